"""Protocol buffer definitions (Mesos v1 API subset and internal messages)."""
