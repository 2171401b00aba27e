"""What agent lifecycle events do to tasks (AgentTasks, driven through AgentLifecycle as the
agent link drives it): unreachable, back, re-registered without its tasks, removed, and the
tasks and frameworks an agent reports after a master failover."""

from __future__ import annotations

import asyncio

import pytest

from agent_runtime.errors import BadRequest
from agent_runtime.master.lifecycle import AgentState, FrameworkState
from agent_runtime.proto import internal_pb2, mesos_pb2, scheduler_pb2
from agent_runtime.resources import Resources
from agent_runtime.task_states import TaskState
from tests.unit.master.fakes import (
    Parts,
    add_agent,
    add_framework,
    launch,
    offer_all,
    parts,
    status_update,
)

Status = mesos_pb2.TaskStatus


def _running(p: Parts, *task_ids: str, partition_aware: bool = True) -> None:
    framework = add_framework(p, partition_aware=partition_aware)
    add_agent(p)
    launch(p, framework, offer_all(p), *((t, "cpus:1") for t in task_ids))
    for task_id in task_ids:
        status_update(p, framework, task_id, mesos_pb2.TASK_RUNNING)
    p.effects.events.clear()


def _register(p: Parts, *reported: tuple[str, TaskState]) -> None:
    """The agent S1 registers again over a new link, reporting these tasks of F1."""
    register = internal_pb2.RegisterAgent(pid="slave(1)@127.0.0.1:5051")
    register.agent_info.CopyFrom(p.book.agents["S1"].info)
    if reported:
        state = register.executors.add()
        state.framework_info.CopyFrom(p.book.frameworks["F1"].info)
        for task_id, task_state in reported:
            task = state.tasks.add(name=task_id, state=task_state)
            task.task_id.value = task_id
    p.agents.register(register, asyncio.Queue())


def test_unreachable_then_back_with_its_task() -> None:
    p = parts()
    _running(p, "t1", "t2")
    agent = p.book.agents["S1"]
    p.agents.mark_unreachable("S1", "no pong")
    assert agent.state is AgentState.UNREACHABLE
    assert p.book.registry.unreachable == {"S1": 1000.0}
    assert [(s.task_id.value, s.state, s.reason) for s in p.effects.updates()] == [
        ("t1", mesos_pb2.TASK_UNREACHABLE, Status.REASON_AGENT_REMOVED),
        ("t2", mesos_pb2.TASK_UNREACHABLE, Status.REASON_AGENT_REMOVED)]
    # The FAILURE of the agent is told to every framework, once.
    (failure,) = p.effects.broadcasts
    assert failure.type == scheduler_pb2.Event.FAILURE and failure.failure.agent_id.value == "S1"
    p.effects.events.clear()

    _register(p, ("t1", mesos_pb2.TASK_RUNNING))
    assert p.book.agents["S1"].state is AgentState.REGISTERED
    assert agent.unreachable_time is None
    assert p.book.registry.unreachable == {}
    assert [(s.task_id.value, s.state, s.reason) for s in p.effects.updates()] == [
        ("t1", mesos_pb2.TASK_RUNNING, Status.REASON_AGENT_REREGISTERED),
        ("t2", mesos_pb2.TASK_GONE, Status.REASON_AGENT_REREGISTERED)]
    framework = p.book.frameworks["F1"]
    assert list(framework.tasks) == ["t1"]
    assert [t.task_id for t in framework.completed_tasks] == ["t2"]


def test_frameworks_that_are_not_partition_aware_hear_lost() -> None:
    p = parts()
    _running(p, "t1", partition_aware=False)
    p.agents.mark_unreachable("S1", "no pong")
    assert p.effects.updates()[0].state == mesos_pb2.TASK_LOST
    task = p.book.frameworks["F1"].tasks["t1"]
    assert task.state == mesos_pb2.TASK_RUNNING  # what was last known; reported as LOST


def test_a_lost_link_makes_the_agent_unreachable_after_the_grace() -> None:
    p = parts()
    _running(p, "t1")
    agent = p.book.agents["S1"]
    p.agents.disconnected(agent, agent.outbox)
    assert agent.state is AgentState.DISCONNECTED and p.effects.updates() == []
    (timer,) = p.effects.timers
    assert timer.delay == 75.0
    p.effects.fire_timers()
    assert p.book.agents["S1"].state is AgentState.UNREACHABLE
    assert p.effects.updates()[0].state == mesos_pb2.TASK_UNREACHABLE
    # The link the master ends itself then closes: nothing more happens.
    p.agents.disconnected(agent, agent.outbox)
    assert p.book.agents["S1"].state is AgentState.UNREACHABLE and p.effects.timers == []


def test_reregistered_without_its_tasks() -> None:
    p = parts()
    _running(p, "t1")
    framework = p.book.frameworks["F1"]
    p.effects.clock += 10  # past the 5s the first ACCEPT refused the rest for
    launch(p, framework, offer_all(p), ("staging", "cpus:1"))
    assert framework.tasks["staging"].state == mesos_pb2.TASK_STAGING
    _register(p)
    assert {(s.task_id.value, s.state, s.reason) for s in p.effects.updates()} == {
        ("t1", mesos_pb2.TASK_GONE, Status.REASON_AGENT_RESTARTED),
        ("staging", mesos_pb2.TASK_DROPPED, Status.REASON_AGENT_RESTARTED)}
    assert framework.tasks == {}


def test_removed_for_good() -> None:
    p = parts()
    _running(p, "t1")
    p.agents.remove("S1")
    (status,) = p.effects.updates()
    assert (status.state, status.reason) == (mesos_pb2.TASK_GONE, Status.REASON_AGENT_REMOVED)
    assert "S1" not in p.book.agents and len(p.effects.broadcasts) == 1


def test_tasks_and_frameworks_an_agent_reports_after_a_master_failover() -> None:
    p = parts()
    register = internal_pb2.RegisterAgent(pid="slave(1)@127.0.0.1:5051")
    register.agent_info.hostname = "h"
    register.agent_info.id.value = "S9"
    register.agent_info.resources.add(name="cpus", type=mesos_pb2.Value.SCALAR).scalar.value = 2
    state = register.executors.add()
    state.framework_info.user = "root"
    state.framework_info.name = "old"
    state.framework_info.id.value = "F7"
    task = state.tasks.add(name="t", state=mesos_pb2.TASK_RUNNING)
    task.task_id.value = "t"
    task.agent_id.value = "S9"
    cpus = task.resources.add(name="cpus", type=mesos_pb2.Value.SCALAR)
    cpus.scalar.value = 1
    p.agents.register(register, asyncio.Queue())

    framework = p.book.frameworks["F7"]
    assert framework.state is FrameworkState.RECOVERED and framework.recovered
    assert framework.tasks["t"].state == mesos_pb2.TASK_RUNNING
    assert p.book.used_on("S9").scalar("cpus") == 1
    assert p.book.registry.agents["S9"].hostname == "h" and p.effects.saves == 1


def _reporting(agent_id: str, *tasks: tuple[str, float]) -> internal_pb2.RegisterAgent:
    """Agent ``agent_id`` registering after a master failover with tasks of F7 using cpus."""
    register = internal_pb2.RegisterAgent(pid=f"slave(1)@127.0.0.{len(agent_id)}:5051")
    register.agent_info.hostname = agent_id
    register.agent_info.id.value = agent_id
    register.agent_info.resources.add(name="cpus", type=mesos_pb2.Value.SCALAR).scalar.value = 8
    state = register.executors.add()
    state.framework_info.user = "root"
    state.framework_info.id.value = "F7"
    for task_id, cpus in tasks:
        task = state.tasks.add(name=task_id, state=mesos_pb2.TASK_RUNNING)
        task.task_id.value = task_id
        task.agent_id.value = agent_id
        resource = task.resources.add(name="cpus", type=mesos_pb2.Value.SCALAR)
        resource.scalar.value = cpus
        resource.allocation_info.role = "*"
    return register


def test_reported_tasks_of_the_same_resources_share_them() -> None:
    p = parts()
    p.agents.register(_reporting("S1", ("a", 1), ("b", 0.5)), asyncio.Queue())
    p.agents.register(_reporting("S2", ("c", 1)), asyncio.Queue())
    tasks = p.book.frameworks["F7"].tasks
    assert tasks["a"].resources is tasks["c"].resources
    for task in tasks.values():
        assert task.resources == Resources.from_proto(task.info.resources)
    assert p.book.used_on("S1").scalar("cpus") == 1.5
    assert p.book.used_on("S2").scalar("cpus") == 1
    for agent_id in ("S3", "S4"):  # bad resources are refused each time, never kept
        bad = _reporting(agent_id, ("d", 1))
        bad.executors[0].tasks[0].resources[0].name = "bad name"
        with pytest.raises(BadRequest):
            p.agents.register(bad, asyncio.Queue())
