"""Offers as Mesos makes them: what tasks free waits for the next batched allocation, and an
agent's free resources go out merged in one offer; FrameworkInfo.offer_filters are checked
before the allocator sees them (a hostile SUBSCRIBE gets a 400, not a crash)."""

from __future__ import annotations

import math

import pytest

from agent_runtime.errors import BadRequest
from agent_runtime.master.model import Executor
from agent_runtime.master.offer_filters import offer_minimums
from agent_runtime.proto import mesos_pb2
from agent_runtime.resources import Resources, parse
from tests.unit.master.fakes import (
    add_agent,
    add_framework,
    launch,
    offer_all,
    parts,
    status_update,
)


def test_ten_finished_tasks_come_back_as_one_offer() -> None:
    p = parts()
    framework = add_framework(p)
    add_agent(p, resources="cpus:0.5;mem:320")
    tasks = [(f"t{i}", "cpus:0.05;mem:32") for i in range(10)]
    launch(p, framework, offer_all(p), *tasks)
    asked = p.effects.allocations_asked
    for index, _ in enumerate(tasks):
        status_update(p, framework, f"t{index}", mesos_pb2.TASK_FINISHED, uuid=b"%016d" % index)
    assert p.effects.allocations_asked == asked  # nothing allocated per finished task
    assert p.book.offers == {}

    (offer_id,) = offer_all(p)  # the interval's batch
    assert p.book.offers[offer_id].resources == parse("cpus:0.5;mem:320")
    offers_events = [e for _, e in p.effects.events if e.type == e.OFFERS]
    assert len(offers_events) == 2 and len(offers_events[-1].offers.offers) == 1


@pytest.mark.parametrize(("value", "problem"), [
    (-1.0, "non-negative"), (math.inf, "finite"), (math.nan, "finite")])
def test_bad_offer_filters_are_refused_by_name(value: float, problem: str) -> None:
    info = mesos_pb2.FrameworkInfo(user="u", name="n")
    info.offer_filters["*"].min_allocatable_resources.quantities.add().quantities[
        "cpus"].value = value
    with pytest.raises(BadRequest, match=problem):
        offer_minimums(info, ["*"])


def test_offer_filters_for_a_foreign_role_are_refused() -> None:
    info = mesos_pb2.FrameworkInfo(user="u", name="n")
    info.offer_filters["ops"].min_allocatable_resources.quantities.add()
    with pytest.raises(BadRequest, match="'ops'"):
        offer_minimums(info, ["*"])


def test_offer_filters_become_milli_units() -> None:
    info = mesos_pb2.FrameworkInfo(user="u", name="n")
    alternative = info.offer_filters["*"].min_allocatable_resources.quantities.add()
    alternative.quantities["cpus"].value = 0.5
    alternative.quantities["mem"].value = 64
    assert offer_minimums(info, ["*"]) == {"*": [{"cpus": 500, "mem": 64_000}]}


def test_an_offer_names_the_framework_executors_on_its_agent_and_no_others() -> None:
    p = parts()
    add_framework(p, "F1")
    add_agent(p, "S1", resources="cpus:2;mem:256")
    add_agent(p, "S2", resources="cpus:2;mem:256")
    for key in (("S1", "F1", "ours"), ("S1", "F9", "theirs"), ("S2", "F9", "theirs")):
        info = mesos_pb2.ExecutorInfo()
        info.executor_id.value = key[2]
        p.book.add_executor(key, Executor(info, key[0], "*", parse("cpus:0.1")))
    offer_all(p)
    named = {o.agent_id: [e.value for e in o.proto.executor_ids]
             for o in p.book.offers.values()}
    assert named == {"S1": ["ours"], "S2": []}


def test_offers_follow_the_agent_and_what_it_offers() -> None:
    # Offers are made from encodings kept per agent: they must follow a new registration (a new
    # record and info) and a change of what is offered, and be what the fields say.
    p = parts()
    add_framework(p)
    add_agent(p, "S1", resources="cpus:4;mem:1024")
    (first,) = offer_all(p)
    proto = p.book.offers[first].proto
    assert (proto.agent_id.value, proto.hostname, proto.framework_id.value) == ("S1", "h", "F1")
    assert (proto.url.address.ip, proto.url.address.port) == ("127.0.0.1", 5051)
    assert proto.allocation_info.role == "*"
    assert all(r.allocation_info.role == "*" for r in proto.resources)
    assert Resources.from_proto(proto.resources) == parse("cpus:4;mem:1024")
    p.offers.give_back(first)

    again = add_agent(p, "S1", resources="cpus:2;mem:512")  # registers again
    again.info.hostname = "h2"
    again.info.attributes.add(name="rack", type=mesos_pb2.Value.TEXT).text.value = "r1"
    (second,) = offer_all(p)
    proto = p.book.offers[second].proto
    assert proto.id.value != first and proto.hostname == "h2"
    assert [a.name for a in proto.attributes] == ["rack"]
    assert Resources.from_proto(proto.resources) == parse("cpus:2;mem:512")

    p.offers.give_back(second)
    p.allocator.update_agent("S1", parse("cpus:1;mem:512"))
    (third,) = offer_all(p)
    assert Resources.from_proto(p.book.offers[third].proto.resources) == parse("cpus:1;mem:512")
