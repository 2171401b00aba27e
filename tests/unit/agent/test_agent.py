"""Agent: executor updates, validated the same by UPDATE and SUBSCRIBE, and what a checkpointing
framework's checkpoints hold back until they are on disk."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest

from agent_runtime.agent import paths
from agent_runtime.agent.agent import Agent
from agent_runtime.agent.executor_updates import record
from agent_runtime.agent.model import Executor, ExecutorState
from agent_runtime.errors import BadRequest
from agent_runtime.proto import executor_pb2, internal_pb2, mesos_pb2
from agent_runtime.task_states import IllegalTransition, TaskState
from tests.unit.agent.fakes import RecordingStream, framework_info, make_agent

Event = executor_pb2.Event
Status = mesos_pb2.TaskStatus


@pytest.fixture
def sent() -> list[internal_pb2.AgentMessage]:
    return []


@pytest.fixture
async def agent(tmp_path: str, sent: list[internal_pb2.AgentMessage]) -> AsyncIterator[Agent]:
    agent = make_agent(str(tmp_path), sent)
    yield agent
    await agent.checkpoint_writer.flush()
    agent.checkpoint_writer.close()


def _executor(agent: Agent, *, checkpoint: bool) -> Executor:
    framework = agent.table.framework_for(framework_info(checkpoint=checkpoint))
    info = mesos_pb2.ExecutorInfo()
    info.executor_id.value = "e1"
    info.framework_id.value = "A-0000"
    executor = agent.supervisor.new_executor(framework, info)
    task = mesos_pb2.TaskInfo(name="t1")
    task.task_id.value = "t1"
    executor.queued["t1"] = task
    return executor


def _status(state: TaskState, **fields: object) -> mesos_pb2.TaskStatus:
    status = mesos_pb2.TaskStatus(state=state, source=Status.SOURCE_EXECUTOR,
                                  uuid=uuid.uuid4().bytes)
    status.task_id.value = "t1"
    for name, value in fields.items():
        setattr(status, name, value)
    return status


BAD = [
    (_status(mesos_pb2.TASK_RUNNING, uuid=b"short"), "16-byte UUID"),
    (_status(mesos_pb2.TASK_STAGING), "TASK_STAGING"),
    (_status(mesos_pb2.TASK_RUNNING, source=Status.SOURCE_AGENT), "SOURCE_EXECUTOR"),
    (mesos_pb2.TaskStatus(state=mesos_pb2.TASK_RUNNING, uuid=b"u" * 16), "task_id"),
]


@pytest.mark.parametrize(("bad", "words"), BAD)
async def test_a_bad_update_in_subscribe_gets_the_same_400_as_by_update(
        agent: Agent, bad: mesos_pb2.TaskStatus, words: str) -> None:
    executor = _executor(agent, checkpoint=False)
    with pytest.raises(BadRequest) as by_update:
        agent.executor_update(executor, bad)
    subscribe = executor_pb2.Call.Subscribe()
    subscribe.unacknowledged_updates.add().status.CopyFrom(bad)
    stream = RecordingStream()
    with pytest.raises(BadRequest) as by_subscribe:
        agent.executor_subscribed(executor, subscribe, stream)
    assert words in str(by_update.value)
    assert str(by_subscribe.value) == str(by_update.value)
    assert executor.stream is None and stream.events == []  # refused before anything changed


async def test_an_update_is_answered_and_forwarded_once_on_disk(
        agent: Agent, sent: list[internal_pb2.AgentMessage]) -> None:
    executor = _executor(agent, checkpoint=True)
    stream = RecordingStream()
    agent.executor_subscribed(executor, executor_pb2.Call.Subscribe(), stream)
    # The launch waits for the task's checkpoint; a kill sent meanwhile stays behind it.
    agent.kill_task(internal_pb2.KillTask(framework_id=mesos_pb2.FrameworkID(value="A-0000"),
                                          task_id=mesos_pb2.TaskID(value="t1")))
    assert [e.type for e in stream.events] == [Event.SUBSCRIBED]
    await agent.checkpoint_writer.flush()
    assert [e.type for e in stream.events] == [Event.SUBSCRIBED, Event.LAUNCH, Event.KILL]

    running = _status(mesos_pb2.TASK_RUNNING)
    checkpointed = agent.executor_update(executor, running)
    assert checkpointed is not None and not sent
    await checkpointed
    await asyncio.sleep(0)
    task_dir = paths.meta_task(agent.config.work_dir, "A-S0", "A-0000", "e1",
                               executor.container_id, "t1")
    stream_on_disk = internal_pb2.UpdateStream()
    with open(os.path.join(task_dir, "task.updates"), "rb") as handle:
        stream_on_disk.ParseFromString(handle.read())
    assert [u.status.uuid for u in stream_on_disk.pending] == [running.uuid]
    assert [m.status_update.status.uuid for m in sent] == [running.uuid]

    # The scheduler's acknowledgement reaches the executor once it is on disk too.
    agent.acknowledge("A-0000", "t1", running.uuid)
    assert stream.events[-1].type == Event.KILL
    await agent.checkpoint_writer.flush()
    await asyncio.sleep(0)
    assert stream.events[-1].type == Event.ACKNOWLEDGED


async def test_without_checkpoint_nothing_waits(
        agent: Agent, sent: list[internal_pb2.AgentMessage]) -> None:
    executor = _executor(agent, checkpoint=False)
    stream = RecordingStream()
    agent.executor_subscribed(executor, executor_pb2.Call.Subscribe(), stream)
    assert [e.type for e in stream.events] == [Event.SUBSCRIBED, Event.LAUNCH]
    assert agent.executor_update(executor, _status(mesos_pb2.TASK_RUNNING)) is None
    assert len(sent) == 1


async def test_an_update_sent_twice_is_taken_once(
        agent: Agent, sent: list[internal_pb2.AgentMessage]) -> None:
    """An executor retries an UPDATE whose answer it did not get (its connection closed): the
    agent keeps, records and forwards it once."""
    executor = _executor(agent, checkpoint=False)
    agent.executor_subscribed(executor, executor_pb2.Call.Subscribe(), RecordingStream())
    running = _status(mesos_pb2.TASK_RUNNING)
    agent.executor_update(executor, running)
    agent.executor_update(executor, running)
    (task,) = executor.launched.values()
    assert [s.uuid for s in task.statuses] == [running.uuid]
    assert [m.status_update.status.uuid for m in sent] == [running.uuid]


# Master messages: one handler per kind -------------------------------------------------------
async def test_master_messages_go_to_their_handler(
        agent: Agent, sent: list[internal_pb2.AgentMessage]) -> None:
    agent.handle(internal_pb2.MasterMessage(ping=7))
    assert [m.pong for m in sent] == [7]

    executor = _executor(agent, checkpoint=False)
    shutdown = internal_pb2.MasterMessage()
    shutdown.shutdown_executor.framework_id.value = "A-0000"
    shutdown.shutdown_executor.executor_id.value = "e1"
    agent.handle(shutdown)
    assert executor.state == ExecutorState.TERMINATING

    agent.handle(internal_pb2.MasterMessage())  # no kind set: nothing to do
    assert len(sent) == 1


# Task states: nothing follows a terminal one -------------------------------------------------
async def test_an_update_resent_in_subscribe_after_the_task_ended_is_dropped(
        agent: Agent, sent: list[internal_pb2.AgentMessage]) -> None:
    executor = _executor(agent, checkpoint=False)
    executor.queued.clear()
    task = executor.launch(mesos_pb2.TaskInfo(name="t1", task_id=mesos_pb2.TaskID(value="t1")),
                           "A-S0", "u")
    agent.agent_update("A-0000", task, mesos_pb2.TASK_FAILED,
                       Status.REASON_CONTAINER_LAUNCH_FAILED, "failed", executor)
    assert task.state == mesos_pb2.TASK_FAILED
    subscribe = executor_pb2.Call.Subscribe()
    subscribe.unacknowledged_updates.add().status.CopyFrom(_status(mesos_pb2.TASK_RUNNING))
    agent.executor_subscribed(executor, subscribe, RecordingStream())
    assert task.state == mesos_pb2.TASK_FAILED
    assert [m.status_update.status.state for m in sent] == [mesos_pb2.TASK_FAILED]
    with pytest.raises(IllegalTransition):
        record(executor, _status(mesos_pb2.TASK_RUNNING))
