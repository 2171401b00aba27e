"""Command-line programs: mesos-execute and mesos-local."""
