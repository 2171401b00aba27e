"""Sandboxes: made in place, or taken whole from a spare made ahead; spares come back once
launches pause, and what an earlier agent left is removed."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator

import pytest

from agent_runtime.agent import sandboxes
from agent_runtime.agent.sandboxes import Sandboxes


def _sandbox(root: str, executor_id: str, container_id: str) -> str:
    return os.path.join(root, "slaves", "S0", "frameworks", "F0", "executors", executor_id,
                        "runs", container_id)


async def _until(predicate: object, what: str) -> None:
    """Poll the loop until ``predicate()`` holds (a hang bound, not a timing assertion)."""
    assert callable(predicate)
    for _ in range(2000):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


@pytest.fixture
async def started(tmp_path: str) -> AsyncIterator[Sandboxes]:
    made = Sandboxes(os.path.join(str(tmp_path), "spare_sandboxes"))
    made.start()
    await _until(lambda: len(made._ready) == sandboxes.SPARES, "spares made")
    yield made
    made.close()


async def test_without_spares_a_sandbox_is_made_in_place(tmp_path: str) -> None:
    made = Sandboxes(os.path.join(str(tmp_path), "spare_sandboxes"))
    container_id = made.container_id()
    directory = _sandbox(str(tmp_path), "e1", container_id)
    await made.make(directory, container_id)
    assert os.path.isdir(directory)
    assert os.readlink(os.path.join(os.path.dirname(directory), "latest")) == container_id
    assert not os.path.exists(made.spare_root)  # never started: no spares made
    made.close()


async def test_a_spare_is_taken_whole(tmp_path: str, started: Sandboxes) -> None:
    container_id = started.container_id()
    assert os.path.isdir(os.path.join(started.spare_root, container_id))
    directory = _sandbox(str(tmp_path), "e1", container_id)
    await started.make(directory, container_id)
    assert sorted(os.listdir(directory)) == ["stderr", "stdout"]
    for name in ("stdout", "stderr"):
        info = os.stat(os.path.join(directory, name))
        assert info.st_size == 0
        assert stat.S_IMODE(info.st_mode) == 0o644 & ~_umask()
    assert os.readlink(os.path.join(os.path.dirname(directory), "latest")) == container_id
    assert not os.path.exists(os.path.join(started.spare_root, container_id))


async def test_an_executor_that_ran_before_keeps_its_runs(tmp_path: str,
                                                          started: Sandboxes) -> None:
    old = _sandbox(str(tmp_path), "e1", "old-run")
    os.makedirs(old)
    container_id = started.container_id()
    directory = _sandbox(str(tmp_path), "e1", container_id)
    await started.make(directory, container_id)
    assert os.path.isdir(old) and os.path.isdir(directory)
    assert os.readlink(os.path.join(os.path.dirname(directory), "latest")) == container_id
    assert not os.path.exists(os.path.join(started.spare_root, container_id))


async def test_spares_come_back_once_launches_pause(tmp_path: str, started: Sandboxes) -> None:
    taken = [started.container_id() for _ in range(3)]
    for index, container_id in enumerate(taken):
        await started.make(_sandbox(str(tmp_path), f"e{index}", container_id), container_id)
    await _until(lambda: len(started._ready) == sandboxes.SPARES, "spares made again")
    assert not set(taken) & set(started._ready)
    assert sorted(os.listdir(started.spare_root)) == sorted(started._ready)


async def test_what_an_earlier_agent_left_is_removed(tmp_path: str) -> None:
    root = os.path.join(str(tmp_path), "spare_sandboxes")
    os.makedirs(os.path.join(root, ".half-built", "runs"))
    os.makedirs(os.path.join(root, "left-over", "runs"))
    made = Sandboxes(root)
    made.start()
    await _until(lambda: len(made._ready) == sandboxes.SPARES, "spares made")
    assert sorted(os.listdir(root)) == sorted(made._ready)
    made.close()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
