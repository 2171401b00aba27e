"""Tests of ``isolators/`` (installed as ``agent_runtime.isolators``), imported as the top-level
``isolators`` package for the reason given in ``tests/unit/images/__init__.py``."""
