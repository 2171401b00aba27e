"""Hierarchical roles: subtree shares, parent weights, the virtual leaf, reservations to
ancestors, multi-role frameworks, fair-sharing exclusions and the minimum allocatable."""

from __future__ import annotations

from collections import Counter

import pytest

from agent_runtime.errors import BadRequest
from agent_runtime.master.allocator import Allocation, Allocator
from agent_runtime.resources import parse

AGENT = "cpus:4;mem:4096"


def _allocator(agents: int | dict[str, str], **kwargs: object) -> Allocator:
    allocator = Allocator(seed=3, **kwargs)  # type: ignore[arg-type]
    named = agents if isinstance(agents, dict) else {f"a{i:02d}": AGENT for i in range(agents)}
    for agent_id, text in named.items():
        allocator.add_agent(agent_id, parse(text))
    return allocator


def _per_framework(offers: list[Allocation]) -> Counter[str]:
    return Counter(o.framework_id for o in offers)


def test_siblings_compare_whole_subtrees() -> None:
    # eng has two sub-roles, ads one: at the top level eng and ads split the cluster evenly,
    # and eng's half is split between its two sub-roles.
    allocator = _allocator(8)
    allocator.add_framework("web", ["eng/web"])
    allocator.add_framework("batch", ["eng/batch"])
    allocator.add_framework("ads", ["ads"])
    assert _per_framework(allocator.allocate(now=0)) == {"ads": 4, "web": 2, "batch": 2}
    assert allocator.role_allocation("eng") == {"cpus": 16_000, "mem": 16_384_000}
    assert allocator.role_allocation("eng/web") == {"cpus": 8000, "mem": 8_192_000}


def test_a_parent_weight_applies_to_its_whole_subtree() -> None:
    allocator = _allocator(12, weights={"eng": 2.0})
    allocator.add_framework("web", ["eng/web"])
    allocator.add_framework("batch", ["eng/batch"])
    allocator.add_framework("ads", ["ads"])
    assert _per_framework(allocator.allocate(now=0)) == {"ads": 4, "web": 4, "batch": 4}


def test_a_nested_weight_splits_the_parent_share() -> None:
    allocator = _allocator(12, weights={"eng/web": 3.0})
    allocator.add_framework("web", ["eng/web"])
    allocator.add_framework("batch", ["eng/batch"])
    allocator.add_framework("ads", ["ads"])
    assert _per_framework(allocator.allocate(now=0)) == {"ads": 6, "web": 4, "batch": 2}


def test_a_role_with_frameworks_and_sub_roles_serves_both() -> None:
    # eng's own framework competes with eng/web inside eng (Mesos's virtual '.' leaf).
    allocator = _allocator(8)
    allocator.add_framework("own", ["eng"])
    allocator.add_framework("web", ["eng/web"])
    allocator.add_framework("ads", ["ads"])
    assert _per_framework(allocator.allocate(now=0)) == {"ads": 4, "own": 2, "web": 2}
    assert allocator.role_allocation("eng") == {"cpus": 16_000, "mem": 16_384_000}


def test_an_idle_sub_role_still_counts_in_its_parent_share() -> None:
    allocator = _allocator(4)
    allocator.add_framework("web", ["eng/web"])
    allocator.add_framework("batch", ["eng/batch"])
    allocator.add_framework("ads", ["ads"])
    allocator.allocate_resources("batch", "eng/batch", "a00", parse(AGENT))
    allocator.allocate_resources("batch", "eng/batch", "a01", parse(AGENT))
    allocator.suppress("batch")
    # eng holds half the cluster through eng/batch, so web (holding nothing itself) waits:
    # ads, at 0 and then 1/4, stays below eng's 1/2 on both free agents.
    assert _per_framework(allocator.allocate(now=0)) == {"ads": 2}


def test_reservations_of_an_ancestor_serve_the_sub_roles_only() -> None:
    allocator = _allocator({"a1": "cpus(eng):2;mem(eng):1024"})
    allocator.add_framework("ads", ["ads"])
    assert allocator.allocate(now=0) == []
    allocator.add_framework("web", ["eng/web"])
    (offer,) = allocator.allocate(now=0)
    assert (offer.framework_id, offer.role) == ("web", "eng/web")
    assert offer.resources == parse("cpus(eng):2;mem(eng):1024")


def test_a_sub_role_reservation_is_not_offered_to_its_parent() -> None:
    allocator = _allocator({"a1": "cpus:1;mem:128;cpus(eng/web):2"})
    allocator.add_framework("eng", ["eng"])
    (offer,) = allocator.allocate(now=0)
    assert offer.resources == parse("cpus:1;mem:128")


def test_a_multi_role_framework_gets_one_offer_per_role_on_an_agent() -> None:
    allocator = _allocator({"a1": "cpus:1;mem:128;cpus(b):2;mem(b):256"})
    allocator.add_framework("f", ["a", "b"])
    offers = {o.role: o.resources for o in allocator.allocate(now=0)}
    assert offers == {"a": parse("cpus:1;mem:128"), "b": parse("cpus(b):2;mem(b):256")}


def test_excluded_resources_do_not_count_in_shares() -> None:
    agents = {"g1": "cpus:1;mem:1024;gpus:4", "c1": "cpus:4;mem:4096", "free": "cpus:4;mem:4096"}
    for excluded, first in ((None, "cpu"), (["gpus"], "gpu")):
        allocator = _allocator(agents, fair_sharing_excluded_resource_names=excluded)
        allocator.add_framework("gpu", ["g"], gpu_aware=True)
        allocator.add_framework("cpu", ["c"])
        allocator.allocate_resources("gpu", "g", "g1", parse(agents["g1"]))
        allocator.allocate_resources("cpu", "c", "c1", parse(agents["c1"]))
        # gpu holds all the gpus (share 1) but only 1/9 of the cpus; cpu holds 4/9.
        (offer,) = allocator.allocate(now=0)
        assert offer.framework_id == first


def test_min_allocatable_can_be_configured() -> None:
    allocator = _allocator({"small": "cpus:1;mem:64", "big": "cpus:2;mem:1024"},
                           min_allocatable_resources=[parse("cpus:1;mem:512")])
    allocator.add_framework("f", ["*"])
    assert {o.agent_id for o in allocator.allocate(now=0)} == {"big"}
    allocator.set_min_allocatable([])
    assert {o.agent_id for o in allocator.allocate(now=0)} == {"small"}


def test_deactivating_a_framework_drops_its_filters() -> None:
    allocator = _allocator(1)
    allocator.add_framework("f", ["*"])
    (offer,) = allocator.allocate(now=0)
    allocator.recover("f", "*", offer.agent_id, offer.resources, now=0, refuse_seconds=1000)
    assert allocator.allocate(now=1) == []
    allocator.deactivate_framework("f")
    allocator.activate_framework("f")
    assert len(allocator.allocate(now=1)) == 1


def test_update_framework_drops_the_filters_of_roles_it_leaves() -> None:
    allocator = _allocator(1)
    allocator.add_framework("f", ["a"])
    (offer,) = allocator.allocate(now=0)
    allocator.recover("f", "a", offer.agent_id, offer.resources, now=0, refuse_seconds=1000)
    allocator.update_framework("f", ["b"])
    allocator.update_framework("f", ["a"])
    assert [o.role for o in allocator.allocate(now=1)] == ["a"]


def test_update_framework_with_suppressed_roles_revives_the_others() -> None:
    allocator = _allocator(1)
    allocator.add_framework("f", ["a", "b"], suppressed=["a", "b"])
    assert allocator.allocate(now=0) == []
    allocator.update_framework("f", ["a", "b"], suppressed=["a"])
    assert [o.role for o in allocator.allocate(now=0)] == ["b"]


def test_removing_a_framework_frees_what_it_held() -> None:
    allocator = _allocator(1)
    allocator.add_framework("f", ["r"])
    allocator.add_framework("g", ["r"])
    (offer,) = allocator.allocate(now=0)
    allocator.remove_framework(offer.framework_id)
    assert allocator.role_allocation("r") == {}
    (again,) = allocator.allocate(now=0)
    assert again.framework_id != offer.framework_id
    assert again.resources == parse(AGENT)


def test_removing_an_agent_releases_what_was_held_there() -> None:
    allocator = _allocator(2)
    allocator.add_framework("f", ["r"])
    allocator.allocate(now=0)
    allocator.remove_agent("a00")
    assert allocator.role_allocation("r") == {"cpus": 4000, "mem": 4_096_000}
    # The master may still return the offer it rescinds; nothing is counted twice.
    allocator.recover("f", "r", "a00", parse(AGENT), now=1)
    assert allocator.role_allocation("r") == {"cpus": 4000, "mem": 4_096_000}


def test_recovering_more_than_was_held_gives_back_only_what_was_held() -> None:
    allocator = _allocator(1)
    allocator.add_framework("f", ["r"])
    allocator.allocate_resources("f", "r", "a00", parse("cpus:1;mem:1024"))
    allocator.recover("f", "r", "a00", parse("cpus:2;mem:2048"), now=0)
    (offer,) = allocator.allocate(now=0)
    assert offer.resources == parse(AGENT)


@pytest.mark.parametrize("weight", [0.0, -1.0, float("inf"), float("nan")])
def test_a_weight_that_would_break_shares_is_refused(weight: float) -> None:
    allocator = _allocator(1)
    with pytest.raises(BadRequest):
        allocator.set_weight("r", weight)
    with pytest.raises(BadRequest):
        Allocator(weights={"r": weight})
    assert allocator.weight("r") == 1.0
