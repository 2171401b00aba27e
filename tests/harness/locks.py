"""Locks on what tests on one machine share, held across processes: xdist workers, and a second
pytest run beside this one.

Most tests own everything they touch (a work dir, free ports, a cgroup root of their own); the
few that need a fixed resource (redis's default port, the offline image cache) hold its lock,
so they wait for each other instead of failing at random.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator

LOCK_DIR = os.path.join(tempfile.gettempdir(), "agent-runtime-test-locks")


@contextlib.contextmanager
def exclusive(name: str) -> Iterator[None]:
    """Hold the machine-wide lock ``name`` (a blocking ``flock``; released if we die)."""
    os.makedirs(LOCK_DIR, exist_ok=True)
    with open(os.path.join(LOCK_DIR, f"{name}.lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
