"""Wire codecs: Mesos-style JSON for protobuf messages, and RecordIO framing."""
