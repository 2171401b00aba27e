"""Checkpoints round-trip, skip finished runs, and notice a reboot."""

from __future__ import annotations

import asyncio
import os

import pytest

from agent_runtime.agent import checkpoint, paths
from agent_runtime.agent.checkpoint import Checkpointer, CheckpointWriter
from agent_runtime.executor_kind import ExecutorKind
from agent_runtime.proto import internal_pb2, mesos_pb2

CUSTOM = ExecutorKind.CUSTOM


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
    ckpt.run("A-S0", framework, executor, "c1", pid=4242, start_time=1700000000.25,
             kind=CUSTOM)
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
    assert run.kind is ExecutorKind.CUSTOM

    ckpt.run_done("A-S0", "A-0000", "e1", "c1")
    assert ckpt.recover().runs == []


def test_a_reboot_drops_the_runs_but_keeps_the_agent(tmp_path: str) -> None:
    agent, framework, executor = _infos()
    ckpt = Checkpointer(str(tmp_path))
    ckpt.agent(agent)
    ckpt.run("A-S0", framework, executor, "c1", pid=1, start_time=1.0, kind=CUSTOM)
    with open(paths.meta_boot_id(str(tmp_path)), "w") as handle:
        handle.write("another-boot")
    state = ckpt.recover()
    assert state.rebooted and state.agent_info == agent and state.runs == []


def test_a_torn_checkpoint_is_skipped(tmp_path: str) -> None:
    agent, framework, executor = _infos()
    ckpt = Checkpointer(str(tmp_path))
    ckpt.agent(agent)
    ckpt.run("A-S0", framework, executor, "c1", pid=1, start_time=1.0, kind=CUSTOM)
    path = os.path.join(paths.meta_executor(str(tmp_path), "A-S0", "A-0000", "e1"),
                        "executor.info")
    with open(path, "wb") as handle:
        handle.write(b"\xff\xff\xff")
    assert ckpt.recover().runs == []
    assert checkpoint.boot_id()  # this machine has one


def test_strict_recovery_refuses_a_torn_checkpoint(tmp_path: str) -> None:
    agent, framework, executor = _infos()
    Checkpointer(str(tmp_path)).agent(agent)
    Checkpointer(str(tmp_path)).run("A-S0", framework, executor, "c1", pid=1, start_time=1.0,
                                    kind=CUSTOM)
    path = os.path.join(paths.meta_framework(str(tmp_path), "A-S0", "A-0000"), "framework.info")
    with open(path, "wb") as handle:
        handle.write(b"\xff\xff\xff")
    with pytest.raises(checkpoint.CheckpointError, match=r"framework\.info"):
        Checkpointer(str(tmp_path), strict=True).recover()


# The writer: off the event loop, in order, each file still tmp + fsync + rename ----------------
async def test_the_writer_queues_then_writes_the_last_bytes_asked(tmp_path: str) -> None:
    writer = CheckpointWriter()
    path = os.path.join(str(tmp_path), "meta", "a")
    assert writer.durable() is None
    writer.write(path, b"one")
    writer.write(path, b"two")  # still queued: replaces "one"
    done = writer.durable()
    assert done is not None and not os.path.exists(path)
    await done
    with open(path, "rb") as handle:
        assert handle.read() == b"two"
    assert os.listdir(os.path.dirname(path)) == ["a"]  # no temporary file left
    writer.write(path, b"two")  # what is on disk already: nothing to do
    assert writer.durable() is None
    writer.close()


async def test_a_later_batch_is_done_only_after_the_earlier_one(tmp_path: str) -> None:
    writer = CheckpointWriter()
    first, second = (os.path.join(str(tmp_path), name) for name in ("first", "second"))
    writer.write(first, b"1")
    in_flight = writer.durable()
    await asyncio.sleep(0)  # the first batch is handed to the thread
    writer.write(second, b"2")
    queued = writer.durable()
    assert in_flight is not None and queued is not None and queued is not in_flight
    await queued
    assert in_flight.done() and os.path.exists(first) and os.path.exists(second)
    writer.close()


async def test_a_failed_write_is_reported_and_asked_again(tmp_path: str) -> None:
    writer = CheckpointWriter()
    blocker = os.path.join(str(tmp_path), "file")
    with open(blocker, "wb"):
        pass
    path = os.path.join(blocker, "under-a-file")  # its directory cannot be made
    writer.write(path, b"x")
    done = writer.durable()
    assert done is not None
    with pytest.raises(OSError):
        await done
    writer.write(path, b"x")  # not skipped: it never reached the disk
    assert writer.durable() is not None
    await writer.flush()
    writer.close()


async def test_a_run_ended_before_its_files_were_written_still_gets_its_sentinel(
        tmp_path: str) -> None:
    agent, framework, executor = _infos()
    writer = CheckpointWriter()
    ckpt = Checkpointer(str(tmp_path), writer=writer)
    ckpt.agent(agent)
    ckpt.run("A-S0", framework, executor, "c1", pid=1, start_time=1.0, kind=CUSTOM)
    ckpt.run_done("A-S0", "A-0000", "e1", "c1")  # nothing on disk yet
    await writer.flush()
    assert Checkpointer(str(tmp_path)).recover().runs == []
    # Launched again: the executor's files are written again, not taken as unchanged.
    ckpt.run("A-S0", framework, executor, "c2", pid=2, start_time=2.0, kind=CUSTOM)
    await writer.flush()
    (run,) = Checkpointer(str(tmp_path)).recover().runs
    assert (run.container_id, run.pid) == ("c2", 2)
    writer.close()


@pytest.mark.parametrize("field", ["framework", "container"])
def test_a_hostile_id_written_by_an_older_agent_skips_that_run_only(tmp_path: str,
                                                                     field: str) -> None:
    # Older agents took any ID; a checkpoint naming '../..' must not become a path on recovery.
    agent, framework, executor = _infos()
    ckpt = Checkpointer(str(tmp_path))
    ckpt.agent(agent)
    ckpt.run("A-S0", framework, executor, "c1", pid=4242, start_time=1.0, kind=CUSTOM)
    other = mesos_pb2.ExecutorInfo()
    other.CopyFrom(executor)
    other.executor_id.value = "e2"
    ckpt.run("A-S0", framework, other, "c2", pid=4243, start_time=1.0, kind=CUSTOM)
    e1 = paths.meta_executor(str(tmp_path), "A-S0", "A-0000", "e1")
    if field == "framework":
        hostile = mesos_pb2.FrameworkInfo()
        hostile.CopyFrom(framework)
        hostile.id.value = "../../.."
        with open(os.path.join(os.path.dirname(os.path.dirname(e1)), "framework.info"),
                  "wb") as handle:
            handle.write(hostile.SerializeToString())
        survivors: list[str] = []
    else:
        with open(os.path.join(e1, "runs", "latest"), "w") as handle:
            handle.write("/etc")
        survivors = ["c2"]
    assert [run.container_id for run in ckpt.recover().runs] == survivors
