"""Reservations with a book and fake effects: operator RESERVE/UNRESERVE kept in the registry,
offers rescinded to make room, resources in use refused, --roles, reservations laid over a
re-registering agent, and RESERVE inside an ACCEPT."""

from __future__ import annotations

import pytest

from agent_runtime.errors import BadRequest, Conflict
from agent_runtime.master.config import MasterConfig
from agent_runtime.proto import mesos_pb2, scheduler_pb2
from agent_runtime.resources import DYNAMIC, Resources, parse
from tests.unit.master.fakes import add_agent, add_framework, launch, offer_all, parts


def _reserved(role: str, cpus: float, principal: str = "ops") -> Resources:
    resource = mesos_pb2.Resource(name="cpus", type=mesos_pb2.Value.SCALAR)
    resource.scalar.value = cpus
    resource.reservations.add(type=DYNAMIC, role=role, principal=principal)
    return Resources.from_proto([resource])


def test_reserve_and_unreserve_are_kept_in_the_registry() -> None:
    p = parts()
    agent = add_agent(p, resources="cpus:4;mem:1024")
    p.reservations.reserve("S1", _reserved("web", 1), "ops")
    assert agent.total.reserved("web").scalar("cpus") == 1
    assert agent.total.unreserved() == parse("cpus:3;mem:1024")
    assert p.book.registry.reservations["S1"] == _reserved("web", 1)
    assert p.effects.saves == 1

    with pytest.raises(BadRequest, match="does not match the principal"):
        p.reservations.reserve("S1", _reserved("web", 1, principal="eve"), "ops")
    with pytest.raises(BadRequest, match="has no reservation"):
        p.reservations.unreserve("S1", _reserved("web", 2), "ops")
    with pytest.raises(BadRequest, match="No agent found"):
        p.reservations.reserve("S9", _reserved("web", 1), "ops")

    p.reservations.unreserve("S1", _reserved("web", 1), "ops")
    assert agent.total == parse("cpus:4;mem:1024")
    assert p.book.registry.reservations == {}


def test_offers_are_rescinded_to_make_room_but_tasks_are_not_evicted() -> None:
    p = parts()
    framework = add_framework(p)
    add_agent(p, resources="cpus:2;mem:256")
    (offer_id,) = offer_all(p)
    p.reservations.reserve("S1", _reserved("web", 1), "ops")
    (rescind,) = p.effects.of_kind(scheduler_pb2.Event.RESCIND)
    assert rescind.rescind.offer_id.value == offer_id and p.book.offers == {}

    launch(p, framework, offer_all(p), ("t1", "cpus:1;mem:128"))
    with pytest.raises(Conflict, match="does not have"):
        p.reservations.reserve("S1", _reserved("web", 1), "ops")


def test_roles_outside_the_whitelist_cannot_be_reserved_for() -> None:
    p = parts(MasterConfig(roles="web"))
    add_agent(p)
    with pytest.raises(BadRequest, match="--roles"):
        p.reservations.reserve("S1", _reserved("batch", 1), "ops")
    p.reservations.reserve("S1", _reserved("web", 1), "ops")


def test_a_registering_agent_gets_its_reservations_back() -> None:
    p = parts()
    p.book.registry.reservations["S1"] = _reserved("web", 1)
    total = p.reservations.apply_registered("S1", parse("cpus:4"))
    assert total.reserved("web").scalar("cpus") == 1 and total.unreserved() == parse("cpus:3")
    # An agent that no longer has the resources loses them (and the registry forgets them).
    assert p.reservations.apply_registered("S1", parse("mem:64")) == parse("mem:64")
    assert p.book.registry.reservations == {} and p.effects.saves == 1


def test_reserve_inside_an_accept_transforms_the_offer() -> None:
    p = parts()
    framework = add_framework(p, role="web")
    agent = add_agent(p, resources="cpus:2;mem:256")
    (offer_id,) = offer_all(p)
    accept = scheduler_pb2.Call.Accept()
    accept.offer_ids.add(value=offer_id)
    reserve = accept.operations.add(type=mesos_pb2.Offer.Operation.RESERVE)
    for resource in _reserved("web", 1, principal="").to_proto():
        resource.allocation_info.role = "web"
        reserve.reserve.resources.append(resource)
    p.launcher.accept(framework, accept)
    assert agent.total.reserved("web").scalar("cpus") == 1
    assert "S1" in p.book.registry.reservations
