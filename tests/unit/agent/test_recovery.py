"""Recovery reads the checkpoints and returns what it found; the agent takes it in. The executor
kind comes from the checkpoint, and a checkpoint from before the kind was written still
recovers, by the shared rule (or the installed-path rule it was written under)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest

from agent_runtime.agent import paths, recovery
from agent_runtime.agent.agent import Agent
from agent_runtime.agent.checkpoint import Checkpointer
from agent_runtime.agent.model import ExecutorState
from agent_runtime.agent.supervisor import executor_info_for
from agent_runtime.containerizer.launcher import Process
from agent_runtime.containerizer.mesos import COMMAND_EXECUTOR
from agent_runtime.executor_kind import ExecutorKind
from agent_runtime.proto import internal_pb2, mesos_pb2
from tests.unit.agent.fakes import (
    AGENT_ID,
    FakeContainerizer,
    fake_process,
    framework_info,
    make_agent,
)

FRAMEWORK = framework_info(checkpoint=True)


class AdoptingContainerizer(FakeContainerizer):
    """Adopts the containers named in ``alive``; the others are gone."""

    def __init__(self, alive: set[str]) -> None:
        super().__init__()
        self.alive = alive

    def adopt(self, container_id: str, info: mesos_pb2.ExecutorInfo, pid: int,
              start_time: float) -> Process | None:
        return fake_process() if container_id in self.alive else None


def _command_task(task_id: str = "t1") -> mesos_pb2.TaskInfo:
    task = mesos_pb2.TaskInfo(name=task_id)
    task.task_id.value = task_id
    task.command.value = "sleep 100"
    return task


def _checkpoint(work_dir: str, info: mesos_pb2.ExecutorInfo, container_id: str,
                kind: ExecutorKind, *, old: bool = False) -> None:
    """A run as the agent checkpoints it; ``old``: as an agent from before ``executor.kind``."""
    ckpt = Checkpointer(work_dir)
    agent = mesos_pb2.AgentInfo(hostname="h")
    agent.id.value = AGENT_ID
    ckpt.agent(agent)
    ckpt.run(AGENT_ID, FRAMEWORK, info, container_id, pid=os.getpid(), start_time=0.0,
             kind=kind)
    task = mesos_pb2.Task(name="t1", state=mesos_pb2.TASK_RUNNING)
    task.task_id.value = "t1"
    ckpt.task(AGENT_ID, FRAMEWORK.id.value, info.executor_id.value, container_id, task)
    if old:
        os.remove(os.path.join(paths.meta_executor(work_dir, AGENT_ID, FRAMEWORK.id.value,
                                                   info.executor_id.value), "executor.kind"))


def _recovered_kind(work_dir: str) -> ExecutorKind:
    state = Checkpointer(work_dir).recover()
    (found,) = recovery.recover(state, AdoptingContainerizer(set()))
    return found.executor.kind


@pytest.mark.parametrize("old", [False, True], ids=["checkpointed-kind", "old-checkpoint"])
def test_a_command_executor_recovers_as_one_after_a_reinstall(tmp_path: str,
                                                              old: bool) -> None:
    info = executor_info_for(FRAMEWORK.id.value, _command_task())
    info.command.value = "/opt/old-install/agent_runtime/executors/command.py"  # moved since
    _checkpoint(str(tmp_path), info, "c1", ExecutorKind.COMMAND, old=old)
    assert _recovered_kind(str(tmp_path)) is ExecutorKind.COMMAND


def test_the_checkpointed_kind_wins_over_the_rule(tmp_path: str) -> None:
    info = executor_info_for(FRAMEWORK.id.value, _command_task())
    _checkpoint(str(tmp_path), info, "c1", ExecutorKind.DOCKER)
    assert _recovered_kind(str(tmp_path)) is ExecutorKind.DOCKER


def test_an_old_checkpoint_of_a_custom_executor_stays_custom(tmp_path: str) -> None:
    info = mesos_pb2.ExecutorInfo(name="my executor")
    info.executor_id.value = "e1"
    info.command.value = "./my-executor"
    _checkpoint(str(tmp_path), info, "c1", ExecutorKind.CUSTOM, old=True)
    assert _recovered_kind(str(tmp_path)) is ExecutorKind.CUSTOM


def test_an_old_checkpoint_naming_the_installed_command_executor_is_a_command_one(
        tmp_path: str) -> None:
    # The rule older agents recovered by: the command is this install's command executor.
    info = mesos_pb2.ExecutorInfo()
    info.executor_id.value = "e1"
    info.command.value = COMMAND_EXECUTOR
    _checkpoint(str(tmp_path), info, "c1", ExecutorKind.COMMAND, old=True)
    assert _recovered_kind(str(tmp_path)) is ExecutorKind.COMMAND


@pytest.fixture
async def agent(tmp_path: str) -> AsyncIterator[tuple[Agent, list[internal_pb2.AgentMessage]]]:
    sent: list[internal_pb2.AgentMessage] = []
    agent = make_agent(str(tmp_path), sent)
    yield agent, sent
    await agent.checkpoint_writer.flush()
    agent.checkpoint_writer.close()


async def test_the_agent_takes_in_what_recovery_found(
        tmp_path: str, agent: tuple[Agent, list[internal_pb2.AgentMessage]]) -> None:
    daemon, sent = agent
    alive = executor_info_for(FRAMEWORK.id.value, _command_task("t1"))
    gone = executor_info_for(FRAMEWORK.id.value, _command_task("t2"))
    _checkpoint(str(tmp_path), alive, "c-alive", ExecutorKind.COMMAND)
    _checkpoint(str(tmp_path), gone, "c-gone", ExecutorKind.COMMAND)
    found = recovery.recover(Checkpointer(str(tmp_path)).recover(),
                             AdoptingContainerizer({"c-alive"}))
    assert daemon.table.frameworks() == []  # recovery changed nothing of the agent's

    assert daemon.adopt(found) == ["c-alive"]
    kept = daemon.table.executor(FRAMEWORK.id.value, "t1")
    assert kept is not None and kept.state == ExecutorState.REGISTERING
    # The re-registration deadline starts once the agent serves, not at adoption.
    assert kept.process is not None and kept.timer is None
    daemon.supervisor.serving()
    assert kept.timer is not None
    await asyncio.sleep(0)
    # The gone one ended as any exit does: its task failed, the master told.
    assert daemon.table.executor(FRAMEWORK.id.value, "t2") is None
    exits = [m.executor_exited for m in sent if m.HasField("executor_exited")]
    assert [e.executor_id.value for e in exits] == ["t2"]
    kept.timer.cancel()
