"""The driver's backoff: full jitter under an exponential ceiling, capped, reset on success."""

from __future__ import annotations

import random

from agent_runtime.scheduler.driver import Backoff


def test_backoff_grows_to_its_cap_with_jitter_and_resets() -> None:
    backoff = Backoff(base=0.25, cap=2.0, rng=random.Random(5))
    waits = [backoff.next() for _ in range(40)]
    ceilings = [min(2.0, 0.25 * 2**n) for n in range(40)]
    assert all(0 <= w <= c for w, c in zip(waits, ceilings, strict=True))
    assert max(waits[10:]) > 1.0  # the ceiling did grow
    assert len(set(waits)) == len(waits)  # jittered: no two frameworks retry in lockstep
    backoff.reset()
    assert backoff.next() <= 0.25
