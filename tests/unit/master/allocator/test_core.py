"""The pure allocator core: weighted DRF, refusal filters, suppress/revive and recovery.

Time is an argument (``now``), never a clock: tests move it by hand.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_runtime.master.allocator import Allocation, Allocator
from agent_runtime.master.allocator.core import MAX_REFUSE_SECONDS
from agent_runtime.master.allocator.quantities import dominant_share
from agent_runtime.resources import Resources, parse

AGENT = "cpus:4;mem:4096"


def _allocator(agents: dict[str, str] | None = None, **kwargs: object) -> Allocator:
    allocator = Allocator(seed=7, **kwargs)  # type: ignore[arg-type]
    for agent_id, text in (agents or {"a1": AGENT}).items():
        allocator.add_agent(agent_id, parse(text))
    return allocator


def _offered(allocations: list[Allocation]) -> set[tuple[str, str, str]]:
    return {(a.framework_id, a.role, a.agent_id) for a in allocations}


def _decline(allocator: Allocator, allocation: Allocation, *, now: float,
             refuse_seconds: float | None = 5.0) -> None:
    allocator.recover(allocation.framework_id, allocation.role, allocation.agent_id,
                      allocation.resources, now=now, refuse_seconds=refuse_seconds)


# Offers ------------------------------------------------------------------------------------------


def test_an_agent_is_offered_whole_to_one_framework_and_only_once() -> None:
    allocator = _allocator()
    allocator.add_framework("f1", ["*"])
    (offer,) = allocator.allocate(now=0)
    assert (offer.framework_id, offer.role, offer.agent_id) == ("f1", "*", "a1")
    assert offer.resources == parse(AGENT)
    assert allocator.allocate(now=1) == []


def test_reserved_resources_go_only_to_their_role_and_its_sub_roles() -> None:
    allocator = _allocator({"a1": "cpus:1;mem:128;cpus(eng):2;mem(eng):256"})
    allocator.add_framework("dev", ["eng/dev"])
    (offer,) = allocator.allocate(now=0)
    assert offer.role == "eng/dev"
    assert offer.resources == parse("cpus:1;mem:128;cpus(eng):2;mem(eng):256")


def test_another_role_gets_only_the_unreserved_part() -> None:
    allocator = _allocator({"a1": "cpus:1;mem:128;cpus(eng):2;mem(eng):256"})
    allocator.add_framework("ads", ["ads"])
    (offer,) = allocator.allocate(now=0)
    assert offer.resources == parse("cpus:1;mem:128")
    allocator.add_framework("eng", ["eng"])
    (offer,) = allocator.allocate(now=0)
    assert (offer.framework_id, offer.resources) == ("eng", parse("cpus(eng):2;mem(eng):256"))


def test_an_agent_below_the_minimum_allocatable_is_not_offered() -> None:
    # --min_allocatable_resources=cpus:0.01|mem:32: either one is enough.
    allocator = _allocator({"tiny": "cpus:0.009;mem:31", "cpu": "cpus:0.01", "mem": "mem:32"})
    allocator.add_framework("f1", ["*"])
    assert {a.agent_id for a in allocator.allocate(now=0)} == {"cpu", "mem"}


def test_gpu_agents_go_only_to_gpu_aware_frameworks() -> None:
    allocator = _allocator({"gpu": AGENT + ";gpus:1"})
    allocator.add_framework("plain", ["*"])
    assert allocator.allocate(now=0) == []
    allocator.add_framework("gpu", ["*"], gpu_aware=True)
    assert _offered(allocator.allocate(now=0)) == {("gpu", "*", "gpu")}


def test_gpu_agents_go_to_everyone_without_filter_gpu_resources() -> None:
    allocator = _allocator({"gpu": AGENT + ";gpus:1"}, filter_gpu_resources=False)
    allocator.add_framework("plain", ["*"])
    assert _offered(allocator.allocate(now=0)) == {("plain", "*", "gpu")}


def test_a_removed_agent_is_no_longer_offered() -> None:
    allocator = _allocator({"a1": AGENT, "a2": AGENT})
    allocator.add_framework("f1", ["*"])
    allocator.remove_agent("a1")
    assert not allocator.has_agent("a1")
    assert {a.agent_id for a in allocator.allocate(now=0)} == {"a2"}


def test_an_inactive_framework_gets_no_offers_until_reactivated() -> None:
    allocator = _allocator()
    allocator.add_framework("f1", ["*"])
    allocator.deactivate_framework("f1")
    assert allocator.allocate(now=0) == []
    allocator.activate_framework("f1")
    assert len(allocator.allocate(now=0)) == 1


# Weighted DRF ------------------------------------------------------------------------------------


def _cluster_with_holdings() -> Allocator:
    # Totals: cpus 10, mem 100. f_mem holds cpus 1 (0.1), mem 40 (0.4): dominant share 0.4.
    # f_cpu holds cpus 3.5 (0.35), mem 30 (0.3): dominant share 0.35. Only "free" is free.
    return _allocator({"held1": "cpus:1;mem:40", "held2": "cpus:3.5;mem:30",
                       "free": "cpus:5.5;mem:30"})


@pytest.mark.parametrize("same_role", [True, False])
def test_the_lowest_dominant_share_is_served_first(same_role: bool) -> None:
    allocator = _cluster_with_holdings()
    roles = {"f_mem": "r", "f_cpu": "r"} if same_role else {"f_mem": "r1", "f_cpu": "r2"}
    for framework_id, role in roles.items():
        allocator.add_framework(framework_id, [role])
    allocator.allocate_resources("f_mem", roles["f_mem"], "held1", parse("cpus:1;mem:40"))
    allocator.allocate_resources("f_cpu", roles["f_cpu"], "held2", parse("cpus:3.5;mem:30"))
    # By cpus alone (or by the sum of shares) f_mem would come first; DRF picks f_cpu.
    assert _offered(allocator.allocate(now=0)) == {("f_cpu", roles["f_cpu"], "free")}


def test_a_heavier_role_is_served_first_at_equal_holdings() -> None:
    allocator = _allocator({"a1": AGENT, "a2": AGENT, "free": AGENT}, weights={"b": 2.0})
    allocator.add_framework("fa", ["a"])
    allocator.add_framework("fb", ["b"])
    allocator.allocate_resources("fa", "a", "a1", parse(AGENT))
    allocator.allocate_resources("fb", "b", "a2", parse(AGENT))
    # Both hold 1/3 of the cluster; b's share divided by its weight is 1/6.
    assert _offered(allocator.allocate(now=0)) == {("fb", "b", "free")}


def test_set_weight_changes_the_order() -> None:
    allocator = _allocator({"a1": AGENT, "a2": AGENT, "free": AGENT})
    allocator.add_framework("fa", ["a"])
    allocator.add_framework("fb", ["b"])
    allocator.allocate_resources("fa", "a", "a1", parse(AGENT))
    allocator.allocate_resources("fb", "b", "a2", parse(AGENT))
    allocator.set_weight("b", 3.0)
    assert allocator.weight("b") == 3.0
    assert _offered(allocator.allocate(now=0)) == {("fb", "b", "free")}
    assert allocator.role_allocation("b") == {"cpus": 8000, "mem": 8_192_000}


def test_weights_split_identical_agents_in_proportion() -> None:
    agents = {f"a{i:02d}": AGENT for i in range(30)}
    allocator = _allocator(agents, weights={"gold": 2.0, "bronze": 1.0})
    allocator.add_framework("g", ["gold"])
    allocator.add_framework("b", ["bronze"])
    offers = allocator.allocate(now=0)
    counts = {role: sum(1 for a in offers if a.role == role) for role in ("gold", "bronze")}
    assert counts == {"gold": 20, "bronze": 10}


def test_frameworks_of_one_role_share_it_by_drf() -> None:
    allocator = _allocator({f"a{i}": AGENT for i in range(9)})
    for framework_id in ("f1", "f2", "f3"):
        allocator.add_framework(framework_id, ["r"])
    offers = allocator.allocate(now=0)
    assert sorted(sum(1 for a in offers if a.framework_id == f) for f in ("f1", "f2", "f3")) \
        == [3, 3, 3]


def test_dominant_share_is_the_largest_fraction_held() -> None:
    totals = {"cpus": 10_000, "mem": 100_000}
    assert dominant_share({"cpus": 5000, "mem": 10_000}, totals) == pytest.approx(0.5)
    assert dominant_share({"cpus": 1000, "mem": 30_000}, totals) == pytest.approx(0.3)
    # Names without a total (or left out of fair sharing) do not count.
    assert dominant_share({"gpus": 1000}, totals) == 0.0


# Refusal filters ---------------------------------------------------------------------------------


def test_a_declined_agent_is_hidden_for_refuse_seconds() -> None:
    allocator = _allocator(allocation_interval=1.0)
    allocator.add_framework("f1", ["*"])
    (offer,) = allocator.allocate(now=100)
    _decline(allocator, offer, now=100, refuse_seconds=5)
    assert allocator.allocate(now=101) == []
    assert allocator.allocate(now=104.999) == []
    assert _offered(allocator.allocate(now=105)) == {("f1", "*", "a1")}


def test_a_filter_hides_the_agent_only_from_that_framework() -> None:
    allocator = _allocator()
    allocator.add_framework("f1", ["*"])
    allocator.add_framework("f2", ["*"])
    (offer,) = allocator.allocate(now=0)
    _decline(allocator, offer, now=0)
    other = "f2" if offer.framework_id == "f1" else "f1"
    assert _offered(allocator.allocate(now=1)) == {(other, "*", "a1")}


def test_a_filter_hides_the_agent_only_for_that_role() -> None:
    allocator = _allocator()
    allocator.add_framework("f1", ["a", "b"])
    (offer,) = allocator.allocate(now=0)
    _decline(allocator, offer, now=0)
    other_role = "b" if offer.role == "a" else "a"
    assert _offered(allocator.allocate(now=1)) == {("f1", other_role, "a1")}


def test_more_than_was_refused_gets_past_the_filter() -> None:
    allocator = _allocator()
    allocator.add_framework("f1", ["*"])
    (offer,) = allocator.allocate(now=0)
    # The framework keeps cpus:2;mem:2048 for a task and declines the rest.
    used = parse("cpus:2;mem:2048")
    _decline(allocator, Allocation("f1", "*", "a1", offer.resources - used), now=0)
    assert allocator.allocate(now=1) == []
    allocator.recover("f1", "*", "a1", used, now=1)  # the task ends
    (again,) = allocator.allocate(now=1)
    assert again.resources == parse(AGENT)


def test_each_refusal_is_a_filter_of_its_own() -> None:
    # Refusals are not summed: the framework refused cpus:1, then cpus:2 (the first cpu
    # included); cpus:3 is more than either and must be offered, as in Mesos.
    allocator = _allocator()
    allocator.add_framework("f1", ["*"])
    (first,) = allocator.allocate(now=0)
    in_use = parse("cpus:3;mem:3072")
    _decline(allocator, Allocation("f1", "*", "a1", first.resources - in_use), now=0,
             refuse_seconds=60)
    allocator.recover("f1", "*", "a1", parse("cpus:1;mem:1024"), now=1)  # a task ends
    (second,) = allocator.allocate(now=1)
    assert second.resources == parse("cpus:2;mem:2048")
    _decline(allocator, second, now=1, refuse_seconds=60)
    assert allocator.allocate(now=2) == []
    allocator.recover("f1", "*", "a1", parse("cpus:1;mem:1024"), now=2)  # another one ends
    (third,) = allocator.allocate(now=2)
    assert third.resources == parse("cpus:3;mem:3072")


def test_a_filter_lasts_at_least_one_allocation_interval() -> None:
    allocator = _allocator(allocation_interval=2.0)
    allocator.add_framework("f1", ["*"])
    (offer,) = allocator.allocate(now=0)
    _decline(allocator, offer, now=0, refuse_seconds=0.1)
    assert allocator.allocate(now=1.9) == []
    assert len(allocator.allocate(now=2.0)) == 1


def test_a_filter_is_capped_at_365_days() -> None:
    allocator = _allocator()
    allocator.add_framework("f1", ["*"])
    (offer,) = allocator.allocate(now=0)
    _decline(allocator, offer, now=0, refuse_seconds=1e12)
    assert allocator.allocate(now=MAX_REFUSE_SECONDS - 1) == []
    assert len(allocator.allocate(now=MAX_REFUSE_SECONDS)) == 1


@pytest.mark.parametrize("refuse_seconds", [None, 0.0])
def test_no_filter_without_refuse_seconds(refuse_seconds: float | None) -> None:
    # The master turns an absent/negative Filters into the 5 s default before calling us.
    allocator = _allocator()
    allocator.add_framework("f1", ["*"])
    (offer,) = allocator.allocate(now=0)
    _decline(allocator, offer, now=0, refuse_seconds=refuse_seconds)
    assert len(allocator.allocate(now=0)) == 1


def test_removing_the_agent_drops_its_filters() -> None:
    allocator = _allocator()
    allocator.add_framework("f1", ["*"])
    (offer,) = allocator.allocate(now=0)
    _decline(allocator, offer, now=0, refuse_seconds=100)
    allocator.remove_agent("a1")
    allocator.add_agent("a1", parse(AGENT))  # it comes back, e.g. after a restart
    assert len(allocator.allocate(now=1)) == 1


# Suppress and revive -----------------------------------------------------------------------------


def test_suppress_stops_offers_and_revive_resumes_them() -> None:
    allocator = _allocator()
    allocator.add_framework("f1", ["*"])
    allocator.suppress("f1")
    assert allocator.allocate(now=0) == []
    allocator.revive("f1")
    assert _offered(allocator.allocate(now=0)) == {("f1", "*", "a1")}


def test_a_suppressed_framework_leaves_the_agent_to_others() -> None:
    allocator = _allocator()
    allocator.add_framework("f1", ["*"])
    allocator.add_framework("f2", ["*"])
    allocator.suppress("f1")
    assert _offered(allocator.allocate(now=0)) == {("f2", "*", "a1")}


def test_suppress_per_role() -> None:
    allocator = _allocator()
    allocator.add_framework("f1", ["a", "b"])
    allocator.suppress("f1", ["a"])
    assert _offered(allocator.allocate(now=0)) == {("f1", "b", "a1")}


def test_frameworks_can_subscribe_suppressed() -> None:
    allocator = _allocator()
    allocator.add_framework("f1", ["a", "b"], suppressed=["a", "b"])
    assert allocator.allocate(now=0) == []
    allocator.revive("f1", ["a"])
    assert _offered(allocator.allocate(now=0)) == {("f1", "a", "a1")}


def test_revive_clears_filters() -> None:
    allocator = _allocator()
    allocator.add_framework("f1", ["*"])
    (offer,) = allocator.allocate(now=0)
    _decline(allocator, offer, now=0, refuse_seconds=3600)
    assert allocator.allocate(now=1) == []
    allocator.revive("f1")
    assert len(allocator.allocate(now=1)) == 1


def test_revive_clears_only_the_filters_of_the_revived_roles() -> None:
    allocator = _allocator()
    allocator.add_framework("f1", ["a", "b"])
    for _ in range(2):  # decline the agent in both roles
        (offer,) = allocator.allocate(now=0)
        _decline(allocator, offer, now=0, refuse_seconds=3600)
    assert allocator.allocate(now=1) == []
    allocator.revive("f1", ["b"])
    assert _offered(allocator.allocate(now=1)) == {("f1", "b", "a1")}


# Recovery ----------------------------------------------------------------------------------------


def test_recovered_resources_come_back_in_the_next_cycle() -> None:
    allocator = _allocator()
    allocator.add_framework("f1", ["*"])
    (offer,) = allocator.allocate(now=0)
    assert allocator.allocate(now=1) == []
    allocator.recover("f1", "*", "a1", offer.resources, now=1)
    (again,) = allocator.allocate(now=2)
    assert again.resources == offer.resources


def test_only_what_is_recovered_is_offered_again() -> None:
    allocator = _allocator()
    allocator.add_framework("f1", ["*"])
    allocator.allocate(now=0)
    allocator.recover("f1", "*", "a1", parse("cpus:1;mem:512"), now=1)
    (again,) = allocator.allocate(now=1)
    assert again.resources == parse("cpus:1;mem:512")


def test_recovery_lowers_the_share_so_drf_order_follows() -> None:
    allocator = _allocator({"a1": AGENT, "a2": AGENT})
    allocator.add_framework("f1", ["r1"])
    allocator.add_framework("f2", ["r2"])
    offers = {a.framework_id: a for a in allocator.allocate(now=0)}
    assert set(offers) == {"f1", "f2"}
    # f2's task ends and f1's resources come back too; f2 now holds less than f1.
    allocator.recover("f2", "r2", offers["f2"].agent_id, parse("cpus:2;mem:2048"), now=1)
    allocator.recover("f1", "r1", offers["f1"].agent_id, offers["f1"].resources, now=1)
    assert allocator.role_allocation("r2") == {"cpus": 2000, "mem": 2_048_000}
    assert allocator.role_allocation("r1") == {}
    # f1 (share 0) is served first and takes the whole free agent.
    first = allocator.allocate(now=1)[0]
    assert first.framework_id == "f1"


def test_allocate_resources_records_what_is_already_in_use() -> None:
    # A re-registering agent reports running tasks: they are not offered again.
    allocator = _allocator()
    allocator.add_framework("f1", ["*"])
    allocator.allocate_resources("f1", "*", "a1", parse("cpus:3;mem:3072"))
    (offer,) = allocator.allocate(now=0)
    assert offer.resources == parse("cpus:1;mem:1024")


# Properties --------------------------------------------------------------------------------------

_agents = st.lists(
    st.tuples(st.integers(1, 32), st.integers(256, 65536)), min_size=1, max_size=40
)


def _dominant_shares(offers: list[Allocation], total: Resources,
                     frameworks: list[str]) -> dict[str, float]:
    totals = total.scalars()
    held: dict[str, Resources] = {f: Resources() for f in frameworks}
    for offer in offers:
        held[offer.framework_id] = held[offer.framework_id] + offer.resources
    return {f: max((v / totals[k] for k, v in r.scalars().items()), default=0.0)
            for f, r in held.items()}


@settings(max_examples=100, deadline=None)
@given(
    agents=_agents,
    n_frameworks=st.integers(2, 6),
    one_role=st.booleans(),
    seed=st.integers(0, 2**32),
    rounds=st.integers(1, 3),
)
def test_equal_weights_and_demand_end_with_close_dominant_shares(
    agents: list[tuple[int, int]], n_frameworks: int, one_role: bool, seed: int, rounds: int,
) -> None:
    allocator = Allocator(seed=seed)
    total = Resources()
    for i, (cpus, mem) in enumerate(agents):
        resources = parse(f"cpus:{cpus};mem:{mem}")
        allocator.add_agent(f"a{i}", resources)
        total = total + resources
    frameworks = [f"f{i}" for i in range(n_frameworks)]
    for framework_id in frameworks:
        allocator.add_framework(framework_id, ["r" if one_role else f"r-{framework_id}"])
    # Giving away whole agents, DRF can leave frameworks apart by at most one agent's share.
    biggest = max(max(c / total.scalar("cpus"), m / total.scalar("mem")) for c, m in agents)
    for now in range(rounds):
        offers = allocator.allocate(now=now)
        assert len(offers) == len(agents)  # everyone wants everything: nothing is left
        shares = _dominant_shares(offers, total, frameworks)
        assert max(shares.values()) - min(shares.values()) <= biggest + 1e-9
        for offer in offers:  # every task ends; the next round starts from scratch
            allocator.recover(offer.framework_id, offer.role, offer.agent_id,
                              offer.resources, now=now)


@settings(max_examples=60, deadline=None)
@given(agents=_agents, weights=st.lists(st.sampled_from([1.0, 2.0, 3.0]), min_size=2,
                                        max_size=4))
def test_weighted_shares_end_close(agents: list[tuple[int, int]], weights: list[float]) -> None:
    roles = {f"r{i}": w for i, w in enumerate(weights)}
    allocator = Allocator(weights=roles, seed=1)
    total = Resources()
    for i, (cpus, mem) in enumerate(agents):
        resources = parse(f"cpus:{cpus};mem:{mem}")
        allocator.add_agent(f"a{i}", resources)
        total = total + resources
    for role in roles:
        allocator.add_framework(f"f-{role}", [role])
    offers = allocator.allocate(now=0)
    shares = _dominant_shares(offers, total, [f"f-{role}" for role in roles])
    weighted = [shares[f"f-{role}"] / weight for role, weight in roles.items()]
    biggest = max(max(c / total.scalar("cpus"), m / total.scalar("mem")) for c, m in agents)
    assert max(weighted) - min(weighted) <= biggest / min(weights) + 1e-9


def test_deactivated_agent_gets_no_offers_until_reactivated() -> None:
    allocator = Allocator(seed=1)
    allocator.add_agent("a1", parse("cpus:2;mem:1024"))
    allocator.add_framework("f1", ["*"])
    allocator.deactivate_agent("a1")
    assert allocator.allocate(now=0.0) == []
    allocator.activate_agent("a1")
    (allocation,) = allocator.allocate(now=1.0)
    assert allocation.agent_id == "a1" and allocation.framework_id == "f1"
