"""A small v1 HTTP scheduler library (used by mesos-execute and the tests)."""
