"""Checkpoints round-trip, skip finished runs, and notice a reboot."""

from __future__ import annotations

import os

import pytest

from agent_runtime.agent import checkpoint, paths
from agent_runtime.agent.checkpoint import Checkpointer
from agent_runtime.proto import internal_pb2, mesos_pb2


def _infos() -> tuple[mesos_pb2.AgentInfo, mesos_pb2.FrameworkInfo, mesos_pb2.ExecutorInfo]:
    agent = mesos_pb2.AgentInfo(hostname="h", port=5051)
    agent.id.value = "A-S0"
    framework = mesos_pb2.FrameworkInfo(user="u", name="f", checkpoint=True)
    framework.id.value = "A-0000"
    executor = mesos_pb2.ExecutorInfo()
    executor.executor_id.value = "e1"
    executor.framework_id.value = "A-0000"
    return agent, framework, executor


def test_a_fresh_work_dir_recovers_nothing(tmp_path: str) -> None:
    state = Checkpointer(str(tmp_path)).recover()
    assert state.agent_info is None and state.runs == [] and not state.rebooted


def test_runs_tasks_and_update_streams_round_trip(tmp_path: str) -> None:
    agent, framework, executor = _infos()
    ckpt = Checkpointer(str(tmp_path))
    ckpt.agent(agent)
    ckpt.run("A-S0", framework, executor, "c1", pid=4242, start_time=1700000000.25)
    task = mesos_pb2.Task(name="t", state=mesos_pb2.TASK_RUNNING)
    task.task_id.value = "t1"
    ckpt.task("A-S0", "A-0000", "e1", "c1", task)
    stream = internal_pb2.UpdateStream(seen=[b"u" * 16])
    pending = stream.pending.add()
    pending.status.task_id.value = "t1"
    pending.status.state = mesos_pb2.TASK_FINISHED
    ckpt.updates("A-S0", "A-0000", "e1", "c1", "t1", stream)

    state = ckpt.recover()
    assert state.agent_info == agent and not state.rebooted
    (run,) = state.runs
    assert run.framework == framework and run.executor == executor
    assert (run.container_id, run.pid, run.start_time) == ("c1", 4242, 1700000000.25)
    assert run.directory == paths.sandbox(str(tmp_path), "A-S0", "A-0000", "e1", "c1")
    assert run.tasks["t1"] == task
    assert run.streams["t1"] == stream

    ckpt.run_done("A-S0", "A-0000", "e1", "c1")
    assert ckpt.recover().runs == []


def test_a_reboot_drops_the_runs_but_keeps_the_agent(tmp_path: str) -> None:
    agent, framework, executor = _infos()
    ckpt = Checkpointer(str(tmp_path))
    ckpt.agent(agent)
    ckpt.run("A-S0", framework, executor, "c1", pid=1, start_time=1.0)
    with open(paths.meta_boot_id(str(tmp_path)), "w") as handle:
        handle.write("another-boot")
    state = ckpt.recover()
    assert state.rebooted and state.agent_info == agent and state.runs == []


def test_a_torn_checkpoint_is_skipped(tmp_path: str) -> None:
    agent, framework, executor = _infos()
    ckpt = Checkpointer(str(tmp_path))
    ckpt.agent(agent)
    ckpt.run("A-S0", framework, executor, "c1", pid=1, start_time=1.0)
    path = os.path.join(paths.meta_executor(str(tmp_path), "A-S0", "A-0000", "e1"),
                        "executor.info")
    with open(path, "wb") as handle:
        handle.write(b"\xff\xff\xff")
    assert ckpt.recover().runs == []
    assert checkpoint.boot_id()  # this machine has one


def test_strict_recovery_refuses_a_torn_checkpoint(tmp_path: str) -> None:
    agent, framework, executor = _infos()
    Checkpointer(str(tmp_path)).agent(agent)
    Checkpointer(str(tmp_path)).run("A-S0", framework, executor, "c1", pid=1, start_time=1.0)
    path = os.path.join(paths.meta_framework(str(tmp_path), "A-S0", "A-0000"), "framework.info")
    with open(path, "wb") as handle:
        handle.write(b"\xff\xff\xff")
    with pytest.raises(checkpoint.CheckpointError, match=r"framework\.info"):
        Checkpointer(str(tmp_path), strict=True).recover()
