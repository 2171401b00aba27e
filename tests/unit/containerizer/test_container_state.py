"""The Mesos containerizer's container states: the table, and the containerizer walking it."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Collection
from pathlib import Path

import psutil
import pytest

from agent_runtime.containerizer.container_state import (
    DESTROYING,
    INITIAL,
    PREPARING,
    PROVISIONING,
    RUNNING,
    TERMINATED,
    TRANSITIONS,
    ContainerState,
    IllegalTransition,
    transition,
)
from agent_runtime.containerizer.containerizer import ContainerConfig
from agent_runtime.containerizer.isolator import Isolator, LaunchInfo
from agent_runtime.containerizer.launcher import PosixLauncher, start_time_of
from agent_runtime.containerizer.mesos import MesosContainerizer
from agent_runtime.errors import LaunchError
from agent_runtime.proto import mesos_pb2


def test_every_state_has_a_row_and_terminated_is_final() -> None:
    assert set(TRANSITIONS) == set(ContainerState)
    assert TRANSITIONS[TERMINATED] == frozenset()
    assert {PROVISIONING, RUNNING} == INITIAL


@pytest.mark.parametrize(("current", "target"), [
    (None, PREPARING), (None, DESTROYING), (PROVISIONING, RUNNING), (RUNNING, PREPARING),
    (RUNNING, TERMINATED), (DESTROYING, RUNNING), (TERMINATED, DESTROYING),
    (TERMINATED, PROVISIONING),
])
def test_illegal_moves_raise_naming_the_container_and_both_states(
        current: ContainerState | None, target: ContainerState) -> None:
    with pytest.raises(IllegalTransition, match=f"container c1: illegal move from "
                                                f"{current.value if current else 'nothing'} "
                                                f"to {target.value}"):
        transition("c1", current, target)


def test_the_launch_path_and_the_failure_path_are_legal() -> None:
    state = transition("c1", None, PROVISIONING)
    for target in (PREPARING, RUNNING, DESTROYING, TERMINATED):
        state = transition("c1", state, target)
    assert transition("c2", transition("c2", None, PROVISIONING), DESTROYING) is DESTROYING


class _Seen(Isolator):
    """Records the containerizer's state for the container at each isolator call."""

    def __init__(self, containerizer: list[MesosContainerizer], fail: bool = False) -> None:
        self.containerizer = containerizer
        self.fail = fail
        self.states: list[tuple[str, ContainerState | None]] = []

    async def recover(self, known: Collection[str]) -> None:
        return None

    async def prepare(self, container_id: str, config: ContainerConfig) -> LaunchInfo | None:
        self.states.append(("prepare", self.containerizer[0].state(container_id)))
        if self.fail:
            raise LaunchError("refused by the test")
        return None

    async def isolate(self, container_id: str, pid: int) -> None:
        self.states.append(("isolate", self.containerizer[0].state(container_id)))

    async def cleanup(self, container_id: str) -> None:
        self.states.append(("cleanup", self.containerizer[0].state(container_id)))


def _config(container_id: str, directory: Path) -> ContainerConfig:
    info = mesos_pb2.ExecutorInfo()
    info.command.value = f"{sys.executable} -c 'import time; time.sleep(30)'"
    return ContainerConfig(container_id=container_id, agent_id="S0",
                           framework_info=mesos_pb2.FrameworkInfo(), executor_info=info,
                           tasks=(), command_executor=False, directory=str(directory),
                           environment={"PATH": "/usr/bin:/bin"})


async def test_a_launch_walks_the_states_and_cleanup_forgets_the_container(
        tmp_path: Path) -> None:
    holder: list[MesosContainerizer] = []
    seen = _Seen(holder)
    containerizer = MesosContainerizer(PosixLauncher(), [seen])
    holder.append(containerizer)
    process = await containerizer.launch(_config("c1", tmp_path))
    assert containerizer.state("c1") is RUNNING
    await containerizer.destroy("c1", process, 0.0)
    assert containerizer.state("c1") is DESTROYING
    await containerizer.destroy("c1", process, 0.0)  # idempotent: no second move
    await asyncio.wait_for(process.exited, 10)
    await containerizer.cleanup("c1")
    await containerizer.cleanup("c1")  # idempotent too
    assert containerizer.state("c1") is None
    assert seen.states == [("prepare", PREPARING), ("isolate", RUNNING),
                           ("cleanup", DESTROYING), ("cleanup", None)]


async def test_a_failed_launch_is_destroyed_and_forgotten(tmp_path: Path) -> None:
    holder: list[MesosContainerizer] = []
    seen = _Seen(holder, fail=True)
    containerizer = MesosContainerizer(PosixLauncher(), [seen])
    holder.append(containerizer)
    with pytest.raises(LaunchError, match="refused by the test"):
        await containerizer.launch(_config("c1", tmp_path))
    assert seen.states == [("prepare", PREPARING), ("cleanup", DESTROYING)]
    assert containerizer.state("c1") is None


async def test_an_adopted_executor_is_running_and_a_gone_one_is_not_kept() -> None:
    containerizer = MesosContainerizer(PosixLauncher())
    me = psutil.Process()
    adopted = containerizer.adopt("c1", mesos_pb2.ExecutorInfo(), me.pid, start_time_of(me.pid))
    assert adopted is not None and containerizer.state("c1") is RUNNING
    assert containerizer.adopt("c2", mesos_pb2.ExecutorInfo(), me.pid, 1.0) is None
    assert containerizer.state("c2") is None
    with pytest.raises(IllegalTransition):  # adopted twice: a bug in the caller
        containerizer.adopt("c1", mesos_pb2.ExecutorInfo(), me.pid, start_time_of(me.pid))
