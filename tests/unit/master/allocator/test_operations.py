"""Offer operations and agent changes: update_allocation (RESERVE/UNRESERVE inside an ACCEPT)
and update_agent (the agent's total changes; what frameworks hold stays as recorded)."""

from __future__ import annotations

import pytest

from agent_runtime.master.allocator import Allocator
from agent_runtime.resources import parse

AGENT = "cpus:4;mem:4096"
UNRESERVED = parse("cpus:1;mem:512")
RESERVED = parse("cpus(eng):1;mem(eng):512")


def _offered_to_eng() -> tuple[Allocator, object]:
    allocator = Allocator(seed=1)
    allocator.add_agent("a1", parse(AGENT))
    allocator.add_framework("f", ["eng"])
    allocator.add_framework("g", ["ads"], suppressed=["ads"])
    (offer,) = allocator.allocate(now=0)
    assert (offer.framework_id, offer.role) == ("f", "eng")
    return allocator, offer


@pytest.mark.parametrize("agent_first", [False, True])
def test_reserve_inside_an_offer(agent_first: bool) -> None:
    allocator, offer = _offered_to_eng()
    new_total = parse("cpus:3;mem:3584") + RESERVED
    # The master calls both, in either order; the books agree once both are in.
    if agent_first:
        allocator.update_agent("a1", new_total)
        allocator.update_allocation("f", "eng", "a1", UNRESERVED, RESERVED)
    else:
        allocator.update_allocation("f", "eng", "a1", UNRESERVED, RESERVED)
        allocator.update_agent("a1", new_total)
    assert allocator.role_allocation("eng") == {"cpus": 4000, "mem": 4_096_000}
    assert allocator.quota_consumed("eng") == {"cpus": 4000, "mem": 4_096_000}
    assert allocator.allocate(now=0) == []  # nothing became available
    pool = offer.resources - UNRESERVED + RESERVED  # type: ignore[attr-defined]
    allocator.recover("f", "eng", "a1", pool, now=0)
    assert allocator.role_allocation("eng") == {}
    assert allocator.quota_consumed("eng") == {"cpus": 1000, "mem": 512_000}  # idle reservation
    # Another role now gets only the unreserved part; eng gets everything again.
    allocator.suppress("f")
    allocator.revive("g")
    (other,) = allocator.allocate(now=1)
    assert (other.role, other.resources) == ("ads", parse("cpus:3;mem:3584"))
    allocator.recover("g", "ads", "a1", other.resources, now=1)
    allocator.suppress("g")
    allocator.revive("f")
    (again,) = allocator.allocate(now=2)
    assert (again.role, again.resources) == ("eng", new_total)


def test_unreserve_inside_an_offer() -> None:
    allocator = Allocator(seed=1)
    total = parse("cpus:3;mem:3584") + RESERVED
    allocator.add_agent("a1", total)
    allocator.add_framework("f", ["eng"])
    (offer,) = allocator.allocate(now=0)
    assert offer.resources == total
    allocator.update_allocation("f", "eng", "a1", RESERVED, UNRESERVED)
    allocator.update_agent("a1", parse(AGENT))
    assert allocator.quota_consumed("eng") == {"cpus": 4000, "mem": 4_096_000}
    allocator.recover("f", "eng", "a1", offer.resources - RESERVED + UNRESERVED, now=0)
    assert allocator.quota_consumed("eng") == {}
    allocator.add_framework("g", ["ads"])
    allocator.suppress("f")
    (other,) = allocator.allocate(now=1)
    assert (other.role, other.resources) == ("ads", parse(AGENT))


def test_update_agent_keeps_what_is_allocated() -> None:
    allocator = Allocator(seed=1)
    allocator.add_agent("a1", parse(AGENT))
    allocator.add_framework("f", ["ads"])
    allocator.allocate_resources("f", "ads", "a1", parse("cpus:1;mem:1024"))
    # An operator reserves 2 of the 3 idle cpus for eng (/reserve, outside any offer).
    allocator.update_agent("a1", parse("cpus:2;mem:3072;cpus(eng):2;mem(eng):1024"))
    assert allocator.role_allocation("ads") == {"cpus": 1000, "mem": 1_024_000}
    assert allocator.quota_consumed("eng") == {"cpus": 2000, "mem": 1_024_000}
    (offer,) = allocator.allocate(now=0)
    assert offer.resources == parse("cpus:1;mem:2048")
    allocator.add_framework("e", ["eng"])
    (eng,) = allocator.allocate(now=0)
    assert eng.resources == parse("cpus(eng):2;mem(eng):1024")


def test_update_agent_changes_the_totals_that_shares_are_made_of() -> None:
    allocator = Allocator(seed=1)
    allocator.add_agent("held", parse("cpus:4;mem:5120"))
    allocator.add_agent("free", parse("cpus:1;mem:1024"))
    allocator.add_framework("fa", ["a"])
    allocator.add_framework("fb", ["b"])
    allocator.allocate_resources("fa", "a", "held", parse("cpus:1;mem:4096"))
    allocator.allocate_resources("fb", "b", "held", parse("cpus:3;mem:1024"))
    # Totals cpus 5, mem 6144: a's share is 4096/6144 = 0.67 (mem), b's 3/5 = 0.6 (cpus).
    (offer,) = allocator.allocate(now=0)
    assert offer.framework_id == "fb"
    allocator.recover("fb", "b", "free", offer.resources, now=0)
    # The free agent grows to 20 GB: a's share drops to 0.2 (cpus; mem is 4096/25600).
    allocator.update_agent("free", parse("cpus:1;mem:20480"))
    (offer,) = allocator.allocate(now=1)
    assert (offer.framework_id, offer.resources) == ("fa", parse("cpus:1;mem:20480"))


def test_a_gpu_agent_update_changes_who_may_get_it() -> None:
    allocator = Allocator(seed=1)
    allocator.add_agent("a1", parse(AGENT))
    allocator.add_framework("plain", ["*"])
    allocator.update_agent("a1", parse(AGENT + ";gpus:1"))
    assert allocator.allocate(now=0) == []
    allocator.update_agent("a1", parse(AGENT))
    assert len(allocator.allocate(now=0)) == 1
