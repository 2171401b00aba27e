"""Isolators, one module per --isolation name."""
