"""Quota: guarantees served first, headroom held back for unmet guarantees, limits that chop
offers (hierarchically), and consumption counted as Mesos does."""

from __future__ import annotations

from collections import Counter

from agent_runtime.master.allocator import Allocator
from agent_runtime.resources import Resources, parse

AGENT = "cpus:4;mem:4096"


def _allocator(agents: int | dict[str, str], **kwargs: object) -> Allocator:
    allocator = Allocator(seed=5, **kwargs)  # type: ignore[arg-type]
    named = agents if isinstance(agents, dict) else {f"a{i:02d}": AGENT for i in range(agents)}
    for agent_id, text in named.items():
        allocator.add_agent(agent_id, parse(text))
    return allocator


def _agents_worth(n: int) -> Resources:
    return parse(f"cpus:{4 * n};mem:{4096 * n}")


def test_an_unmet_guarantee_is_served_before_fair_shares() -> None:
    allocator = _allocator(5)
    for role in ("q", "a", "b"):
        allocator.add_framework(f"f-{role}", [role])
    allocator.allocate_resources("f-q", "q", "a00", parse(AGENT))
    allocator.set_quota("q", _agents_worth(3), Resources())
    # By DRF q (1/5 of the cluster) would wait for a and b; its guarantee comes first.
    offers = Counter(o.role for o in allocator.allocate(now=0))
    assert offers == {"q": 2, "a": 1, "b": 1}
    assert allocator.quota_consumed("q") == _agents_worth(3).scalars()


def test_headroom_is_held_back_for_a_guarantee_nobody_uses_yet() -> None:
    allocator = _allocator(2)
    allocator.set_quota("q", _agents_worth(1), Resources())
    allocator.add_framework("f", ["r"])
    assert len(allocator.allocate(now=0)) == 1
    assert allocator.allocate(now=1) == []
    allocator.remove_quota("q")
    assert len(allocator.allocate(now=2)) == 1


def test_a_guarantee_bursts_up_to_its_limit_in_the_first_stage() -> None:
    allocator = _allocator({"a1": "cpus:8;mem:8192"})
    allocator.set_quota("q", parse("cpus:2;mem:2048"), parse("cpus:6;mem:6144"))
    allocator.add_framework("f", ["q"])
    (offer,) = allocator.allocate(now=0)
    assert offer.resources == parse("cpus:6;mem:6144")


def test_a_limit_chops_the_offer_and_the_rest_goes_on() -> None:
    allocator = _allocator({"a1": "cpus:8;mem:8192;disk:100"})
    allocator.set_quota("lim", Resources(), parse("cpus:2;mem:2048"))
    allocator.add_framework("f", ["lim"])
    allocator.add_framework("g", ["other"])
    offers = {o.role: o.resources for o in allocator.allocate(now=0)}
    # Role order by name: lim goes first; disk is not limited, so it comes along.
    assert offers == {"lim": parse("cpus:2;mem:2048;disk:100"), "other": parse("cpus:6;mem:6144")}


def test_a_limit_on_one_resource_leaves_the_others_free() -> None:
    allocator = _allocator({"a1": "cpus:8;mem:8192"})
    allocator.set_quota("lim", Resources(), parse("cpus:2"))
    allocator.add_framework("f", ["lim"])
    (offer,) = allocator.allocate(now=0)
    assert offer.resources == parse("cpus:2;mem:8192")


def test_a_role_at_its_limit_gets_no_ports_either() -> None:
    allocator = _allocator({"a1": AGENT, "a2": "cpus:4;mem:4096;ports:[31000-31010]"},
                           min_allocatable_resources=[])
    allocator.set_quota("lim", Resources(), parse("cpus:1;mem:1024"))
    allocator.add_framework("f", ["lim"])
    allocator.allocate_resources("f", "lim", "a1", parse("cpus:1;mem:1024"))
    assert allocator.allocate(now=0) == []


def test_limits_bound_the_whole_subtree() -> None:
    allocator = _allocator(4)
    allocator.set_quota("eng", Resources(), _agents_worth(1))
    allocator.add_framework("web", ["eng/web"])
    allocator.add_framework("batch", ["eng/batch"])
    offers = allocator.allocate(now=0)
    assert sum((o.resources for o in offers), Resources()).scalars() == \
        _agents_worth(1).scalars()
    assert allocator.allocate(now=1) == []


def test_reservations_are_offered_to_a_role_at_its_limit() -> None:
    allocator = _allocator({"a1": "cpus:2;mem:1024;cpus(lim):2;mem(lim):512"})
    allocator.set_quota("lim", Resources(), parse("cpus:1;mem:1024"))
    allocator.add_framework("f", ["lim"])
    # Its reservations alone consume more cpus than the limit: no unreserved cpus; the
    # reservations still come, and so does the unreserved memory that fits under the limit.
    (offer,) = allocator.allocate(now=0)
    assert offer.resources == parse("cpus(lim):2;mem(lim):512;mem:512")


def test_a_role_that_reaches_its_limit_still_gets_its_reservations() -> None:
    for seed in range(8):  # either agent may come first
        allocator = Allocator(seed=seed)
        allocator.add_agent("plain", parse(AGENT))
        allocator.add_agent("reserved", parse("cpus(lim):1;mem(lim):256"))
        allocator.set_quota("lim", Resources(), parse("cpus:5;mem:4352"))
        allocator.add_framework("f", ["lim"])
        offers = {o.agent_id: o.resources for o in allocator.allocate(now=0)}
        assert offers == {"plain": parse(AGENT), "reserved": parse("cpus(lim):1;mem(lim):256")}


def test_guarantees_count_reservations_first() -> None:
    allocator = _allocator({"a1": "cpus(q):4;mem(q):4096", "a2": AGENT})
    allocator.set_quota("q", _agents_worth(1), Resources())
    allocator.add_framework("f", ["r"])
    # q's reservations already meet its guarantee: nothing is held back from r.
    assert [o.agent_id for o in allocator.allocate(now=0)] == ["a2"]


def test_quota_consumed_counts_idle_reservations_and_unreserved_allocations() -> None:
    allocator = _allocator({"a1": "cpus:4;mem:4096;cpus(eng):2;cpus(eng/web):1"})
    assert allocator.quota_consumed("eng") == {"cpus": 3000}
    assert allocator.quota_consumed("eng/web") == {"cpus": 1000}
    assert allocator.quota_consumed("ads") == {}
    allocator.add_framework("web", ["eng/web"])
    (offer,) = allocator.allocate(now=0)
    assert offer.resources == parse("cpus:4;mem:4096;cpus(eng):2;cpus(eng/web):1")
    # eng/web holds eng's reservation too, but that counts for eng, not for eng/web.
    assert allocator.quota_consumed("eng/web") == {"cpus": 5000, "mem": 4_096_000}
    assert allocator.quota_consumed("eng") == {"cpus": 7000, "mem": 4_096_000}
    allocator.recover("web", "eng/web", "a1", offer.resources, now=0)
    assert allocator.quota_consumed("eng") == {"cpus": 3000}


def test_the_quota_benchmark_shape_in_small() -> None:
    # LargeAndSmallQuota with 10 roles of half an agent and 2 of two agents on 12 agents. The
    # small roles fill whole agents in pairs, so no agent is split between a small and a large
    # role: one allocation per small role, two per large one.
    allocator = _allocator({f"a{i}": "cpus:2;mem:2048;disk:2048" for i in range(12)})
    small, large = parse("cpus:1;mem:1024;disk:1024"), parse("cpus:4;mem:4096;disk:4096")
    for i in range(10):
        allocator.add_framework(f"s{i}", [f"small{i}"])
        allocator.set_quota(f"small{i}", small, small)
    for i in range(2):
        allocator.add_framework(f"l{i}", [f"large{i}"])
        allocator.set_quota(f"large{i}", large, large)
    assert len(allocator.allocate(now=0)) == 14
    for i in range(10):
        assert allocator.quota_consumed(f"small{i}") == small.scalars()
    for i in range(2):
        assert allocator.quota_consumed(f"large{i}") == large.scalars()
    assert allocator.allocate(now=1) == []
