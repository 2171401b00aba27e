"""What a test needs from this machine, and what happens when it is missing.

Locally a missing need skips the test: a developer without ZooKeeper or a Docker engine still
runs the rest. In CI it fails instead, so a runner that lost a service cannot pass by skipping
what needed it. CI is any of ``CI=1``, ``CI=true`` or ``CI=yes`` (what ``.ci/run`` and the usual
CI services set); this is the one place that reads it.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def missing(need: str) -> NoReturn:
    """Stop the test for want of ``need``: a skip here, a failure in CI."""
    if in_ci():
        pytest.fail(f"CI must provide {need}")
    pytest.skip(f"needs {need}")


def require(condition: bool, need: str) -> None:
    if not condition:
        missing(need)


def require_root(what: str = "mounts and namespaces") -> None:
    require(os.geteuid() == 0, f"root ({what})")
