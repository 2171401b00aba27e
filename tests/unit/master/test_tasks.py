"""TaskLauncher with a book and fake effects: launching from offers, the master's own updates
for tasks it refuses, agents' status updates through the task state table, acknowledgements,
kills, and executors that exit."""

from __future__ import annotations

import pytest

from agent_runtime.errors import BadRequest
from agent_runtime.master.model import Executor
from agent_runtime.proto import internal_pb2, mesos_pb2, scheduler_pb2
from agent_runtime.resources import parse
from tests.unit.master.fakes import (
    add_agent,
    add_framework,
    launch,
    offer_all,
    parts,
    status_update,
)

Status = mesos_pb2.TaskStatus
UUID = b"0123456789abcdef"


def test_accept_launches_and_gives_back_what_is_left() -> None:
    p = parts()
    framework = add_framework(p)
    add_agent(p, resources="cpus:4;mem:1024")
    offers = offer_all(p)
    launch(p, framework, offers, ("t1", "cpus:1;mem:128"))

    task = framework.tasks["t1"]
    assert task.state == mesos_pb2.TASK_STAGING and task.user == "root"
    ((agent_id, message),) = p.effects.to_agents
    assert agent_id == "S1" and message.run_task.task.task_id.value == "t1"
    assert p.effects.metrics["master/tasks_launched"] == 1
    assert p.book.offers == {}
    # The rest went back to the allocator, filtered for the default 5 seconds.
    assert p.allocator.allocate(p.effects.now()) == []
    (again,) = p.allocator.allocate(p.effects.now() + 6)
    assert again.resources == parse("cpus:3;mem:896")


def test_invalid_offers_drop_the_tasks_with_a_master_update() -> None:
    p = parts()
    aware = add_framework(p, "F1")
    add_agent(p)
    launch(p, aware, ["no-such-offer"], ("t1", "cpus:1"))
    (status,) = p.effects.updates("F1")
    assert status.state == mesos_pb2.TASK_DROPPED
    assert (status.source, status.reason) == (Status.SOURCE_MASTER, Status.REASON_INVALID_OFFERS)
    assert status.message == "Offer no-such-offer is no longer valid" and not status.uuid
    assert "t1" not in aware.tasks

    legacy = add_framework(p, "F2", partition_aware=False)
    launch(p, legacy, ["no-such-offer"], ("t2", "cpus:1"))
    assert p.effects.updates("F2")[0].state == mesos_pb2.TASK_LOST


def test_decline_of_offers_on_several_agents_filters_each() -> None:
    # As Mesos: one DECLINE may name offers on several agents; each comes back with the filter.
    p = parts()
    framework = add_framework(p)
    add_agent(p, "S1")
    add_agent(p, "S2")
    offers = offer_all(p)
    assert len(offers) == 2
    decline = scheduler_pb2.Call.Decline()
    for offer_id in [*offers, "gone"]:
        decline.offer_ids.add(value=offer_id)
    decline.filters.refuse_seconds = 30
    p.launcher.decline(add_framework(p, "F2"), decline)  # not its offers: ignored
    assert sorted(p.book.offers) == offers
    p.allocator.deactivate_framework("F2")

    p.launcher.decline(framework, decline)
    assert p.book.offers == {}
    assert p.allocator.allocate(p.effects.now()) == []
    p.effects.clock += 31
    again = p.allocator.allocate(p.effects.now())
    assert sorted((a.framework_id, a.agent_id) for a in again) == [("F1", "S1"), ("F1", "S2")]


def test_a_task_too_big_for_its_offer_is_an_error() -> None:
    p = parts()
    framework = add_framework(p)
    add_agent(p, resources="cpus:1;mem:128")
    launch(p, framework, offer_all(p), ("big", "cpus:2"), ("ok", "cpus:1"))
    (status,) = p.effects.updates()
    assert (status.task_id.value, status.state) == ("big", mesos_pb2.TASK_ERROR)
    assert status.reason == Status.REASON_TASK_INVALID
    assert list(framework.tasks) == ["ok"]


def test_status_updates_move_the_task_and_free_it_once() -> None:
    p = parts()
    framework = add_framework(p)
    add_agent(p, resources="cpus:1;mem:128")
    launch(p, framework, offer_all(p), ("t1", "cpus:1;mem:128"))
    status_update(p, framework, "t1", mesos_pb2.TASK_RUNNING, uuid=b"r" * 16)
    task = framework.tasks["t1"]
    assert task.state == mesos_pb2.TASK_RUNNING
    asked = p.effects.allocations_asked

    status_update(p, framework, "t1", mesos_pb2.TASK_FINISHED, uuid=UUID)
    assert task.state == mesos_pb2.TASK_FINISHED and task.terminal_uuid == UUID
    # Freed, and left for the next batched allocation (no allocation asked for at once).
    assert p.effects.allocations_asked == asked
    (freed,) = p.allocator.allocate(p.effects.now())
    assert freed.resources == parse("cpus:1;mem:128")
    # A late update cannot move it out of its terminal state, and frees nothing again.
    status_update(p, framework, "t1", mesos_pb2.TASK_FAILED, uuid=b"x" * 16)
    assert task.state == mesos_pb2.TASK_FINISHED
    assert p.allocator.allocate(p.effects.now()) == []
    # Every update is passed on to the framework as the agent sent it.
    assert [s.state for s in p.effects.updates()] == [
        mesos_pb2.TASK_RUNNING, mesos_pb2.TASK_FINISHED, mesos_pb2.TASK_FAILED]
    assert len(task.statuses) == 3


def test_acknowledging_the_terminal_update_forgets_the_task() -> None:
    p = parts()
    framework = add_framework(p)
    add_agent(p)
    launch(p, framework, offer_all(p), ("t1", "cpus:1"))
    status_update(p, framework, "t1", mesos_pb2.TASK_FAILED, uuid=UUID)
    ack = scheduler_pb2.Call.Acknowledge(uuid=UUID)
    ack.agent_id.value = "S1"
    ack.task_id.value = "t1"
    p.launcher.acknowledge(framework, ack)
    assert p.effects.to_agents[-1][1].acknowledge.uuid == UUID
    assert "t1" not in framework.tasks
    assert [t.task_id for t in framework.completed_tasks] == ["t1"]

    with pytest.raises(BadRequest, match="16-byte"):
        p.launcher.acknowledge(framework, scheduler_pb2.Call.Acknowledge(uuid=b"short"))


def test_kill_sends_to_the_agent_or_reconciles_an_unknown_task() -> None:
    p = parts()
    framework = add_framework(p)
    add_agent(p)
    launch(p, framework, offer_all(p), ("t1", "cpus:1"))
    kill = scheduler_pb2.Call.Kill()
    kill.task_id.value = "t1"
    p.launcher.kill(framework, kill)
    assert p.effects.to_agents[-1][1].kill_task.task_id.value == "t1"

    kill.task_id.value = "nobody"
    kill.agent_id.value = "S1"
    p.launcher.kill(framework, kill)
    (status,) = p.effects.updates()
    assert (status.state, status.reason) == (mesos_pb2.TASK_GONE, Status.REASON_RECONCILIATION)


def test_a_task_group_without_a_default_executor_fails_its_tasks() -> None:
    p = parts()
    framework = add_framework(p)
    add_agent(p)
    accept = scheduler_pb2.Call.Accept()
    for offer_id in offer_all(p):
        accept.offer_ids.add(value=offer_id)
    group = accept.operations.add(type=mesos_pb2.Offer.Operation.LAUNCH_GROUP)
    task = group.launch_group.task_group.tasks.add(name="g")
    task.task_id.value = "g"
    p.launcher.accept(framework, accept)
    (status,) = p.effects.updates()
    assert status.state == mesos_pb2.TASK_ERROR
    assert "must be of type DEFAULT" in status.message  # more in test_task_groups.py


def test_an_exited_custom_executor_gives_back_and_is_reported() -> None:
    p = parts()
    framework = add_framework(p)
    add_agent(p)
    info = mesos_pb2.ExecutorInfo(type=mesos_pb2.ExecutorInfo.CUSTOM, name="e")
    info.executor_id.value = "e1"
    info.framework_id.value = "F1"
    p.executors.add(Executor(info, "S1", "*", parse("cpus:0.5")))
    assert p.book.used_on("S1").scalar("cpus") == 0.5

    exited = internal_pb2.ExecutorExited(status=9)
    exited.framework_id.value = "F1"
    exited.executor_id.value = "e1"
    p.launcher.executor_exited(p.book.agents["S1"], exited)
    assert p.book.executors == {}
    (failure,) = p.effects.of_kind(scheduler_pb2.Event.FAILURE)
    assert (failure.failure.executor_id.value, failure.failure.status) == ("e1", 9)
    assert framework.id == "F1"
