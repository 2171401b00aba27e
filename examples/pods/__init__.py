"""Pods on the cluster (seed 002): a pod framework on agent_runtime.scheduler."""
