"""The allocator: a pure core (no I/O, no clock) that the master drives and applies."""

from agent_runtime.master.allocator.core import Allocation, Allocator

__all__ = ["Allocation", "Allocator"]
