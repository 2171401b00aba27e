"""The disk layout refuses, as a backstop, every ID that would not be one path component."""

from __future__ import annotations

import os

import pytest

from agent_runtime.agent import paths
from agent_runtime.ids import InvalidId

HOSTILE = ["..", ".", "", "../../..", "/tmp/x", "a\x00b", "\N{GRINNING FACE}" * 200]


def test_valid_ids_make_the_documented_tree() -> None:
    assert paths.sandbox("/w", "S", "F", "E", "C") == \
        "/w/slaves/S/frameworks/F/executors/E/runs/C"
    assert paths.meta_task("/w", "S", "F", "E", "C", "T") == \
        "/w/meta/slaves/S/frameworks/F/executors/E/runs/C/tasks/T"
    sandbox = paths.sandbox("/w", "S", "F", "E", "C")
    assert len(os.path.relpath(sandbox, paths.slaves_root("/w")).split("/")) == \
        paths.SANDBOX_DEPTH


@pytest.mark.parametrize("bad", HOSTILE)
@pytest.mark.parametrize("position", range(5))
def test_every_id_component_is_checked(bad: str, position: int) -> None:
    ids = ["S", "F", "E", "C", "T"]
    ids[position] = bad
    with pytest.raises(InvalidId):
        paths.meta_task("/w", *ids)
    if position < 4:
        with pytest.raises(InvalidId):
            paths.sandbox("/w", *ids[:4])
