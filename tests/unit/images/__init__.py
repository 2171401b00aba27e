"""Tests of ``images/`` (installed as ``agent_runtime.images``).

They import it as the top-level ``images`` package, from the source tree: mypy cannot follow the
editable install's import hook that maps ``images/`` to ``agent_runtime.images``, and the modules
import each other relatively, so they behave the same under either name.
"""
