"""Properties of the allocator over random clusters, checked against books kept here (not the
allocator's own): a small simulated master keeps part of each offer, declines the rest with a
random filter, and now and then lets tasks end."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from agent_runtime.master.allocator import Allocation, Allocator
from agent_runtime.master.allocator.core import MAX_REFUSE_SECONDS
from agent_runtime.resources import Resources, parse

ROLES = ["a", "a/x", "a/x/y", "a/z", "b", "b/w", "c"]

_reservation = st.tuples(st.sampled_from(ROLES), st.integers(1, 4), st.integers(1, 8))
_agent = st.tuples(st.integers(0, 8), st.integers(0, 16), st.booleans(),
                   st.lists(_reservation, max_size=2))
_framework = st.lists(st.sampled_from(ROLES), min_size=1, max_size=3, unique=True)


def _agent_text(cpus: int, mem_quarters: int, ports: bool,
                reservations: list[tuple[str, int, int]]) -> Resources:
    total = Resources()
    if cpus:
        total = total + parse(f"cpus:{cpus}")
    if mem_quarters:
        total = total + parse(f"mem:{256 * mem_quarters}")
    if ports:
        total = total + parse("ports:[31000-31009]")
    for role, r_cpus, r_mem in reservations:
        total = total + parse(f"cpus({role}):{r_cpus};mem({role}):{256 * r_mem}")
    return total


def _in_subtree(role: str, ancestor: str) -> bool:
    return role == ancestor or role.startswith(ancestor + "/")


@dataclass
class Sim:
    """Plays the master: remembers what frameworks keep and which refusals are live."""

    allocator: Allocator
    totals: dict[str, Resources]
    rng: random.Random
    held: dict[tuple[str, str, str], Resources] = field(default_factory=dict)
    refusals: list[tuple[tuple[str, str, str], Resources, float]] = field(default_factory=list)
    interval: float = 1.0

    def holdings(self) -> dict[tuple[str, str, str], Resources]:
        return dict(self.held)

    def check_no_over_allocation(self, offers: list[Allocation]) -> None:
        used: dict[str, Resources] = {}
        for (_, _, agent_id), resources in self.held.items():
            used[agent_id] = used.get(agent_id, Resources()) + resources
        for offer in offers:
            used[offer.agent_id] = used.get(offer.agent_id, Resources()) + offer.resources
        for agent_id, resources in used.items():
            assert self.totals[agent_id].contains(resources), (agent_id, resources)

    def check_filters(self, offers: list[Allocation], now: float) -> None:
        for offer in offers:
            key = (offer.framework_id, offer.role, offer.agent_id)
            for refused_key, refused, expires in self.refusals:
                if refused_key == key and expires > now:
                    assert not refused.contains(offer.resources), (offer, refused, expires)

    def act(self, offers: list[Allocation], now: float) -> None:
        for offer in offers:
            key = (offer.framework_id, offer.role, offer.agent_id)
            choice = self.rng.random()
            if choice < 0.4:
                keep = Resources()
            elif choice < 0.7:
                keep = offer.resources.filter(lambda _k: self.rng.random() < 0.5)
            else:
                keep = offer.resources
            if keep:
                self.held[key] = self.held.get(key, Resources()) + keep
            declined = offer.resources - keep
            refuse = self.rng.choice([None, 0.0, 0.5, 2.0, 5.0, 1e9])
            self.allocator.recover(*key, declined, now=now, refuse_seconds=refuse)
            if declined and refuse:
                seconds = min(max(refuse, self.interval), MAX_REFUSE_SECONDS)
                self.refusals.append((key, declined, now + seconds))
        for key in list(self.held):
            if self.rng.random() < 0.25:  # the tasks end
                self.allocator.recover(*key, self.held.pop(key), now=now)


def _cluster(agents: list[tuple[int, int, bool, list[tuple[str, int, int]]]],
             frameworks: list[list[str]], seed: int, **kwargs: object) -> Sim:
    allocator = Allocator(seed=seed, **kwargs)  # type: ignore[arg-type]
    totals = {}
    for i, spec in enumerate(agents):
        totals[f"s{i}"] = _agent_text(*spec)
        allocator.add_agent(f"s{i}", totals[f"s{i}"])
    for i, roles in enumerate(frameworks):
        allocator.add_framework(f"f{i}", roles)
    return Sim(allocator, totals, random.Random(seed))


@settings(max_examples=80, deadline=None)
@given(agents=st.lists(_agent, min_size=1, max_size=8),
       frameworks=st.lists(_framework, min_size=1, max_size=5),
       seed=st.integers(0, 2**16), rounds=st.integers(1, 5))
def test_reservations_go_only_to_their_role_subtree_and_nothing_is_offered_twice(
    agents: list[tuple[int, int, bool, list[tuple[str, int, int]]]],
    frameworks: list[list[str]], seed: int, rounds: int,
) -> None:
    sim = _cluster(agents, frameworks, seed)
    for now in range(rounds):
        offers = sim.allocator.allocate(now=float(now))
        seen = set()
        for offer in offers:
            key = (offer.framework_id, offer.role, offer.agent_id)
            assert key not in seen  # one offer per framework, role and agent
            seen.add(key)
            assert offer.role in frameworks[int(offer.framework_id[1:])]
            for (_, reservations), _ in offer.resources.items():
                if reservations:
                    assert _in_subtree(offer.role, reservations[-1].role), offer
        sim.check_no_over_allocation(offers)
        sim.act(offers, float(now))


@settings(max_examples=80, deadline=None)
@given(agents=st.lists(_agent, min_size=1, max_size=6),
       frameworks=st.lists(_framework, min_size=1, max_size=4),
       seed=st.integers(0, 2**16), steps=st.lists(st.floats(0.0, 4.0), min_size=1, max_size=8))
def test_a_declined_offer_is_not_made_again_before_its_filter_expires(
    agents: list[tuple[int, int, bool, list[tuple[str, int, int]]]],
    frameworks: list[list[str]], seed: int, steps: list[float],
) -> None:
    sim = _cluster(agents, frameworks, seed)
    now = 0.0
    for step in steps:
        offers = sim.allocator.allocate(now=now)
        sim.check_filters(offers, now)
        sim.act(offers, now)
        now += step


_limit = st.tuples(st.sampled_from(ROLES), st.integers(0, 10), st.integers(0, 24))


@settings(max_examples=80, deadline=None)
@given(agents=st.lists(_agent, min_size=1, max_size=8),
       frameworks=st.lists(_framework, min_size=1, max_size=5),
       limits=st.lists(_limit, min_size=1, max_size=3, unique_by=lambda x: x[0]),
       seed=st.integers(0, 2**16), rounds=st.integers(1, 5))
def test_limits_are_never_exceeded(
    agents: list[tuple[int, int, bool, list[tuple[str, int, int]]]],
    frameworks: list[list[str]], limits: list[tuple[str, int, int]], seed: int, rounds: int,
) -> None:
    sim = _cluster(agents, frameworks, seed)
    caps = {role: {"cpus": cpus * 1000, "mem": 256_000 * quarters}
            for role, cpus, quarters in limits}
    for role, cap in caps.items():
        sim.allocator.set_quota(role, {}, cap)  # thousandths: a zero limit is a real limit
    for now in range(rounds):
        offers = sim.allocator.allocate(now=float(now))
        everything = [*((k[1], r) for k, r in sim.held.items()),
                      *((o.role, o.resources) for o in offers)]
        for role, cap in caps.items():
            # Reservations in the subtree consume quota whoever holds them, and are offered even
            # past the limit; unreserved resources only come while they fit under it.
            reserved: dict[str, int] = {}
            for total in sim.totals.values():
                for (name, stack), amount in total.items():
                    if stack and _in_subtree(stack[-1].role, role) and isinstance(amount, int):
                        reserved[name] = reserved.get(name, 0) + amount
            unreserved: dict[str, int] = {}
            for held_role, resources in everything:
                if _in_subtree(held_role, role):
                    for (name, stack), amount in resources.items():
                        if not stack and isinstance(amount, int):
                            unreserved[name] = unreserved.get(name, 0) + amount
            for name, limit in cap.items():
                assert unreserved.get(name, 0) <= max(0, limit - reserved.get(name, 0)), \
                    (role, unreserved, reserved, cap)
            consumed = dict(reserved)
            for name, amount in unreserved.items():
                consumed[name] = consumed.get(name, 0) + amount
            assert sim.allocator.quota_consumed(role) == consumed  # our books agree
        sim.act(offers, float(now))


@settings(max_examples=80, deadline=None)
@given(agent_count=st.integers(2, 12), agent_cpus=st.integers(1, 8),
       agent_quarters=st.integers(1, 16),
       guarantees=st.lists(st.tuples(st.integers(0, 16), st.integers(0, 32)), min_size=1,
                           max_size=3),
       others=st.integers(1, 3), seed=st.integers(0, 2**16), hierarchical=st.booleans())
def test_guarantees_are_met_before_other_roles_get_more(
    agent_count: int, agent_cpus: int, agent_quarters: int,
    guarantees: list[tuple[int, int]], others: int, seed: int, hierarchical: bool,
) -> None:
    total = {"cpus": agent_count * agent_cpus * 1000,
             "mem": agent_count * agent_quarters * 256_000}
    wanted = [{"cpus": c * 1000, "mem": q * 256_000} for c, q in guarantees]
    for name in ("cpus", "mem"):  # only ask for what the cluster has
        assume(sum(g[name] for g in wanted) <= total[name])
    allocator = Allocator(seed=seed)
    for i in range(agent_count):
        allocator.add_agent(f"s{i}", parse(f"cpus:{agent_cpus};mem:{256 * agent_quarters}"))
    for i in range(others):  # roles without quota, which DRF alone would serve first
        allocator.add_framework(f"other{i}", [f"a{i}"])
    quota_roles = [f"q{i}/leaf" if hierarchical else f"q{i}" for i in range(len(wanted))]
    for i, (role, guarantee) in enumerate(zip(quota_roles, wanted, strict=True)):
        top = role.split("/")[0]
        allocator.set_quota(top, Resources({(n, ()): v for n, v in guarantee.items()}),
                            Resources())
        allocator.add_framework(f"quota{i}", [role])
    offers = allocator.allocate(now=0)
    for i, guarantee in enumerate(wanted):
        consumed = allocator.quota_consumed(f"q{i}")
        for name, amount in guarantee.items():
            assert consumed.get(name, 0) >= amount, (i, consumed, guarantee)
    rest = Resources()
    for offer in offers:
        if offer.role.startswith("a"):
            rest = rest + offer.resources
    for name in ("cpus", "mem"):
        assert rest.scalars().get(name, 0) <= total[name] - sum(g[name] for g in wanted)


@settings(max_examples=60, deadline=None)
@given(agent_count=st.integers(6, 60), weights=st.tuples(st.sampled_from([1.0, 2.0, 3.0]),
                                                         st.sampled_from([1.0, 2.0, 3.0])),
       children=st.tuples(st.integers(1, 3), st.integers(1, 3)), seed=st.integers(0, 2**16))
def test_parent_weights_split_the_cluster_between_subtrees(
    agent_count: int, weights: tuple[float, float], children: tuple[int, int], seed: int,
) -> None:
    allocator = Allocator(seed=seed, weights={"a": weights[0], "b": weights[1]})
    for i in range(agent_count):
        allocator.add_agent(f"s{i}", parse("cpus:4;mem:4096"))
    leaves = {parent: [f"{parent}/c{j}" for j in range(n)]
              for parent, n in zip(("a", "b"), children, strict=True)}
    for parent_leaves in leaves.values():
        for leaf in parent_leaves:
            allocator.add_framework(f"f-{leaf}", [leaf])
    offers = allocator.allocate(now=0)
    assert len(offers) == agent_count  # everyone wants everything
    count = {leaf: 0 for group in leaves.values() for leaf in group}
    for offer in offers:
        count[offer.role] += 1
    one = 1 / agent_count  # one whole agent: the granularity of every share here
    subtree = {p: sum(count[leaf] for leaf in group) * one for p, group in leaves.items()}
    assert abs(subtree["a"] / weights[0] - subtree["b"] / weights[1]) <= one / min(weights) + 1e-9
    for group in leaves.values():  # equal weights inside a subtree
        shares = [count[leaf] * one for leaf in group]
        assert max(shares) - min(shares) <= one + 1e-9


@settings(max_examples=60, deadline=None)
@given(agents=st.lists(st.tuples(st.integers(1, 32), st.integers(1, 64)), min_size=1,
                       max_size=30),
       n_frameworks=st.integers(2, 6), seed=st.integers(0, 2**16), rounds=st.integers(1, 3))
def test_equal_weights_and_demand_converge_inside_a_subtree(
    agents: list[tuple[int, int]], n_frameworks: int, seed: int, rounds: int,
) -> None:
    allocator = Allocator(seed=seed)
    totals = {"cpus": 0, "mem": 0}
    for i, (cpus, quarters) in enumerate(agents):
        allocator.add_agent(f"s{i}", parse(f"cpus:{cpus};mem:{256 * quarters}"))
        totals["cpus"] += cpus * 1000
        totals["mem"] += quarters * 256_000
    for i in range(n_frameworks):
        allocator.add_framework(f"f{i}", [f"team/r{i}"])
    biggest = max(max(c * 1000 / totals["cpus"], q * 256_000 / totals["mem"]) for c, q in agents)
    for now in range(rounds):
        offers = allocator.allocate(now=float(now))
        held = {f"f{i}": {"cpus": 0, "mem": 0} for i in range(n_frameworks)}
        for offer in offers:
            for name, amount in offer.resources.scalars().items():
                held[offer.framework_id][name] += amount
        shares = [max(h[n] / totals[n] for n in totals) for h in held.values()]
        assert max(shares) - min(shares) <= biggest + 1e-9
        for offer in offers:
            allocator.recover(offer.framework_id, offer.role, offer.agent_id, offer.resources,
                              now=float(now))
