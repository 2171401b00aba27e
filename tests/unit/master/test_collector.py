"""mesos-master's collector thresholds: offers must die young (see master/main.py)."""

from __future__ import annotations

import gc

from agent_runtime.master.main import COLLECTOR_THRESHOLDS, tune_collector


def test_the_master_collects_young_objects_less_often() -> None:
    before = gc.get_threshold()
    try:
        tune_collector()
        assert gc.get_threshold() == COLLECTOR_THRESHOLDS
        young, middle, _ = COLLECTOR_THRESHOLDS
        default_young, default_middle, _ = before
        assert young * middle > 10 * default_young * default_middle
    finally:
        gc.set_threshold(*before)
