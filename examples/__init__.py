"""Frameworks built on agent_runtime's scheduler library, as users would write them."""
