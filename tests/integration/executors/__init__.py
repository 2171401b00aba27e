"""Custom executors that the integration tests launch through ExecutorInfo."""
