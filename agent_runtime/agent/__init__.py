"""The agent: registers with the master, runs executors, relays status updates."""
