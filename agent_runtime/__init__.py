"""agent-runtime: a Mesos-compatible agent, containerizers and a bundled DRF master."""

__version__ = "1.11.0"
"""The Mesos API level we are compatible with; reported by ``/version``."""
