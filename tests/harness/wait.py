"""Polling with a deadline: how a test waits for something another process does.

A test that checks once, right after an asynchronous cleanup, passes on an idle machine and fails
on a loaded one; these poll until the condition holds and fail, naming what was awaited, only
when the deadline passes. Deadlines are generous on purpose: they bound a hang, they are not a
claim about speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

INTERVAL = 0.05


def wait_for(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy and return that. ``OSError`` counts as
    not yet (a daemon still starting refuses connections)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        with contextlib.suppress(OSError):
            last = check()
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last {last!r}")
        time.sleep(INTERVAL)


async def until(check: Callable[[], Any], timeout: float = 20.0,
                what: str = "condition") -> None:
    """``wait_for`` for async tests: sleeps on the event loop, never blocks it."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(INTERVAL)
