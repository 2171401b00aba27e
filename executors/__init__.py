"""Executors: the command executor (and later docker and default executors)."""
