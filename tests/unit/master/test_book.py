"""The book's indexes stay consistent: an offer is in every index or in none, the offers of an
agent are a lookup, a forgotten task lands among its framework's completed ones."""

from __future__ import annotations

from agent_runtime.master.model import Executor
from agent_runtime.proto import mesos_pb2, scheduler_pb2
from agent_runtime.resources import parse
from tests.unit.master.fakes import add_agent, add_framework, launch, offer_all, parts


def test_offers_are_indexed_by_agent_and_framework() -> None:
    p = parts()
    framework = add_framework(p)
    add_agent(p, "S1")
    add_agent(p, "S2", "cpus:2;mem:512")
    offer_ids = offer_all(p)
    assert len(offer_ids) == 2
    (on_s1,) = p.book.offers_on("S1")
    assert on_s1.agent_id == "S1" and on_s1.proto.id.value in framework.offers
    assert p.book.offered_on("S2").scalar("cpus") == 2

    p.offers.give_back(on_s1.proto.id.value)
    assert p.book.offers_on("S1") == []
    assert on_s1.proto.id.value not in framework.offers
    assert on_s1.proto.id.value not in p.book.offers
    assert p.book.pop_offer(on_s1.proto.id.value) is None  # gone from every index


def test_rescinding_the_offers_of_an_agent_tells_their_framework() -> None:
    p = parts()
    add_framework(p)
    add_agent(p, "S1")
    add_agent(p, "S2")
    offer_all(p)
    (on_s1,) = p.book.offers_on("S1")
    p.offers.rescind_on("S1")
    assert p.book.offers_on("S1") == [] and len(p.book.offers_on("S2")) == 1
    rescinded = [e.rescind.offer_id.value for e in p.effects.of_kind(scheduler_pb2.Event.RESCIND)]
    assert rescinded == [on_s1.proto.id.value]
    # Its resources are back with the allocator: the next run offers them again.
    assert offer_all(p) and len(p.book.offers_on("S1")) == 1


def test_forgotten_tasks_are_kept_as_completed_and_used_resources_follow() -> None:
    p = parts()
    framework = add_framework(p)
    agent = add_agent(p)
    launch(p, framework, offer_all(p), ("t1", "cpus:1;mem:128"), ("t2", "cpus:2;mem:128"))
    assert [t.task_id for _, t in p.book.tasks_on(agent)] == ["t1", "t2"]
    assert p.book.used_on("S1").scalar("cpus") == 3

    task = framework.tasks["t1"]
    task.transition(mesos_pb2.TASK_FINISHED)
    assert p.book.used_on("S1").scalar("cpus") == 2  # terminal tasks hold nothing
    p.book.forget_task(task)
    assert "t1" not in framework.tasks and list(framework.completed_tasks) == [task]
    assert agent.tasks == {"F1": {"t2"}}


def test_a_completed_framework_keeps_its_forgotten_tasks() -> None:
    p = parts()
    framework = add_framework(p)
    add_agent(p)
    launch(p, framework, offer_all(p), ("t1", "cpus:1"))
    p.book.complete_framework(framework)
    assert p.book.completed_framework("F1") is framework
    p.book.forget_task(framework.tasks["t1"])
    assert [t.task_id for t in framework.completed_tasks] == ["t1"]


def test_custom_executors_are_indexed_by_agent() -> None:
    p = parts()
    keys = [("S1", "F1", "a"), ("S1", "F2", "b"), ("S2", "F1", "c")]
    for key in keys:
        info = mesos_pb2.ExecutorInfo()
        info.executor_id.value = key[2]
        p.book.add_executor(key, Executor(info, key[0], "*", parse("cpus:0.5")))
    first = p.book.executors[keys[0]]
    # A second add under a known key keeps the first (as the master's setdefault did).
    assert p.book.add_executor(keys[0], Executor(mesos_pb2.ExecutorInfo(), "S1", "*",
                                                 parse("cpus:9"))) is first
    assert set(p.book.executors_on("S1")) == {keys[0], keys[1]}
    assert p.book.frameworks_with_executors_on("S1") == {"F1", "F2"}
    assert p.book.used_on("S1").scalar("cpus") == 1.0
    assert p.book.pop_executor(keys[0]) is first
    assert p.book.pop_executor(keys[0]) is None
    assert set(p.book.executors_on("S1")) == {keys[1]}
    p.book.pop_executor(keys[1])
    assert p.book.executors_on("S1") == {} and p.book.frameworks_with_executors_on("S1") == set()
    assert set(p.book.executors) == {keys[2]} and set(p.book.executors_on("S2")) == {keys[2]}
