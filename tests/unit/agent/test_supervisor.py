"""ExecutorSupervisor.watch: one watch for launched and adopted executors, each path with its
own deadline to subscribe and its own way of failing tasks."""

from __future__ import annotations

import asyncio

import pytest

from agent_runtime.agent.agent import Agent
from agent_runtime.agent.model import Executor, ExecutorState
from agent_runtime.flags import Duration
from agent_runtime.proto import internal_pb2, mesos_pb2
from tests.unit.agent.fakes import FakeContainerizer, fake_process, framework_info, make_agent

Status = mesos_pb2.TaskStatus
REGISTRATION = 0.05
REREGISTRATION = 0.3


@pytest.fixture
def containerizer() -> FakeContainerizer:
    return FakeContainerizer()


@pytest.fixture
def sent() -> list[internal_pb2.AgentMessage]:
    return []


@pytest.fixture
def agent(tmp_path: str, containerizer: FakeContainerizer,
          sent: list[internal_pb2.AgentMessage]) -> Agent:
    return make_agent(str(tmp_path), sent, containerizer,
                      executor_registration_timeout=Duration(REGISTRATION),
                      executor_reregistration_timeout=Duration(REREGISTRATION))


def _executor(agent: Agent, task_id: str, *, launched: bool) -> Executor:
    framework = agent.table.framework_for(framework_info())
    info = mesos_pb2.ExecutorInfo()
    info.executor_id.value = f"e-{task_id}"
    info.framework_id.value = "A-0000"
    executor = agent.supervisor.new_executor(framework, info)
    if launched:  # a task the executor has: only its exit fails it
        task = mesos_pb2.Task(name=task_id, state=mesos_pb2.TASK_RUNNING)
        task.task_id.value = task_id
        executor.launched[task_id] = task
    else:  # a task waiting for the executor to subscribe
        queued = mesos_pb2.TaskInfo(name=task_id)
        queued.task_id.value = task_id
        executor.queued[task_id] = queued
    return executor


def _statuses(sent: list[internal_pb2.AgentMessage]) -> list[mesos_pb2.TaskStatus]:
    return [m.status_update.status for m in sent if m.HasField("status_update")]


def _exits(sent: list[internal_pb2.AgentMessage]) -> list[int]:
    return [m.executor_exited.status for m in sent if m.HasField("executor_exited")]


async def test_a_launched_executor_that_does_not_subscribe_fails_its_queued_tasks(
    agent: Agent, containerizer: FakeContainerizer, sent: list[internal_pb2.AgentMessage]
) -> None:
    executor = _executor(agent, "t1", launched=False)
    framework = agent.table.framework_for(framework_info())
    await agent.supervisor.launch(framework, executor)
    assert executor.process is not None and executor.timer is not None
    await asyncio.sleep(REGISTRATION + 0.05)
    assert containerizer.destroyed == [(executor.container_id, 0.0)]
    [status] = _statuses(sent)
    assert status.state == mesos_pb2.TASK_FAILED
    assert status.reason == Status.REASON_EXECUTOR_REGISTRATION_TIMEOUT
    assert status.message == f"Executor did not register within {REGISTRATION:g}secs"
    assert not executor.queued

    executor.process.exited.set_result(-9)
    await asyncio.sleep(0)
    assert executor.state == ExecutorState.TERMINATED
    assert _exits(sent) == [-9]


async def test_an_adopted_executor_gets_the_reregistration_timeout(
    agent: Agent, containerizer: FakeContainerizer, sent: list[internal_pb2.AgentMessage]
) -> None:
    executor = _executor(agent, "t2", launched=True)
    process = fake_process()
    agent.supervisor.watch(executor, process, adopted=True)
    assert executor.process is process
    # Until the agent serves, no executor could re-subscribe: no deadline runs.
    await asyncio.sleep(max(REGISTRATION, REREGISTRATION) + 0.05)
    assert containerizer.destroyed == [] and executor.timer is None
    agent.supervisor.serving()
    await asyncio.sleep(REGISTRATION + 0.02)
    assert containerizer.destroyed == []  # not the registration timeout
    await asyncio.sleep(REREGISTRATION)
    assert containerizer.destroyed == [(executor.container_id, 0.0)]
    assert _statuses(sent) == []  # nothing queued fails on the timeout itself

    process.exited.set_result(0)
    await asyncio.sleep(0)
    [status] = _statuses(sent)
    assert status.state == mesos_pb2.TASK_FAILED
    assert status.reason == Status.REASON_EXECUTOR_TERMINATED
    assert status.message == ("Executor terminated (exit status unknown: it was adopted after "
                              "an agent restart)")
    assert _exits(sent) == [0]


async def test_an_executor_adopted_once_serving_gets_its_deadline_at_once(
    agent: Agent, containerizer: FakeContainerizer
) -> None:
    agent.supervisor.serving()
    executor = _executor(agent, "t2b", launched=True)
    agent.supervisor.watch(executor, fake_process(), adopted=True)
    assert executor.timer is not None
    await asyncio.sleep(REREGISTRATION + 0.1)
    assert containerizer.destroyed == [(executor.container_id, 0.0)]


async def test_a_launched_executor_exit_reports_its_status(
    agent: Agent, sent: list[internal_pb2.AgentMessage]
) -> None:
    executor = _executor(agent, "t3", launched=True)
    process = fake_process()
    agent.supervisor.watch(executor, process)
    process.exited.set_result(3)
    await asyncio.sleep(0)
    [status] = _statuses(sent)
    assert status.reason == Status.REASON_EXECUTOR_TERMINATED
    assert status.message == "Executor exited with status 3"
    assert executor.timer is not None and executor.timer.cancelled()


@pytest.mark.parametrize("adopted", [False, True])
async def test_an_executor_that_subscribed_in_time_is_left_alone(
    agent: Agent, containerizer: FakeContainerizer, adopted: bool
) -> None:
    executor = _executor(agent, f"t4-{adopted}", launched=True)
    agent.supervisor.watch(executor, fake_process(), adopted=adopted)
    agent.supervisor.serving()
    executor.transition(ExecutorState.RUNNING)  # as a SUBSCRIBE would
    await asyncio.sleep(REREGISTRATION + 0.05)
    assert containerizer.destroyed == []
