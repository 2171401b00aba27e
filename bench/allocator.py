"""Allocator benchmarks ported from Mesos, timed beside Mesos's published figures.

Shapes (Mesos's own allocator benchmarks, with the figures Mesos published for them):

(a) ``HierarchicalAllocator_BENCHMARK_Test.DeclineOffers`` (src/tests/hierarchical_allocator_tests
    .cpp): agents of ``cpus:24;mem:4096;disk:4096;ports:[31000-32000]``, each with
    ``cpus:16;mem:2014;disk:1024`` and 16 two-port ranges already allocated round-robin to the
    frameworks, all in role ``*``. A round is one ``allocate(now)``; every offer it makes is then
    declined with ``refuse_seconds=INT_MAX`` (capped at 365 days, as Mesos does), so each round
    offers every agent to a framework that has not refused it yet. Mesos's figures: 2000 agents x
    200 frameworks ~2.9 s per allocate (0.26-0.28, MESOS-4694); 10,000 x 1000 ~1.06 s per round
    (1.7.1, commit 86653356d, C++ with --enable-optimize).
(b) ``BENCHMARK_HierarchicalAllocator_WithQuotaParam.LargeAndSmallQuota/2`` (src/tests/
    hierarchical_allocator_benchmarks.cpp): 3000 agents of ``cpus:2;mem:2048;disk:2048``, 2500
    roles with quota (guarantee = limit) of half an agent and 500 with two agents, one framework
    each. Mesos: "Made 3500 allocations" in ~15.4 s, then "Made 0 allocation" in ~13.7 s.

Each timing is one call of the pure allocator on this machine, in this process. A naive loop that
touches every (agent, framework) pair once, with a set-membership check each, is timed beside it:
the floor for any allocator that does not index (perf-anchors.md: ~0.5 s at 10k x 1000).

Run: ``.venv/bin/python bench/allocator.py [--quick] [--rounds N]``; exits 1 if a target fails.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from agent_runtime.master.allocator import Allocator  # noqa: E402
from agent_runtime.resources import Resources, parse  # noqa: E402

INT_MAX = 2**31 - 1


@dataclass
class Check:
    name: str
    ours: float
    mesos: str
    target: float | None  # seconds; None: informational
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.target is None or self.ours <= self.target


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def say(self, line: str) -> None:
        self.lines.append(line)
        print(line, flush=True)


def _port_ranges(begin: int, end: int, count: int) -> Resources:
    """Mesos's ``makePortRanges``: ``count`` ranges of two ports spread over [begin, end]."""
    step = (end - begin) // count
    ranges = ",".join(f"{begin + i * step}-{begin + i * step + 1}" for i in range(count))
    return parse(f"ports:[{ranges}]")


def decline_offers(report: Report, agents: int, frameworks: int, rounds: int,
                   target: float, mesos: str, mesos_setup: tuple[str, str] = ("", "")) -> None:
    """``mesos_setup``: Mesos's published (addFramework, addSlave) times for this shape."""
    shape = f"DeclineOffers {agents} agents x {frameworks} frameworks"
    report.say(f"\n== {shape}")
    allocator = Allocator(seed=1, allocation_interval=1.0)
    ids = [f"framework-{i}" for i in range(frameworks)]
    started = time.perf_counter()
    for framework_id in ids:
        allocator.add_framework(framework_id, ["*"])
    add_frameworks = time.perf_counter() - started
    total = parse("cpus:24;mem:4096;disk:4096;ports:[31000-32000]")
    used = parse("cpus:16;mem:2014;disk:1024") + _port_ranges(31000, 32000, 16)
    started = time.perf_counter()
    for i in range(agents):
        agent_id = f"agent-{i}"
        allocator.add_agent(agent_id, total)
        allocator.allocate_resources(ids[i % frameworks], "*", agent_id, used)
    add_agents = time.perf_counter() - started
    report.say(f"added {frameworks} frameworks in {add_frameworks * 1000:.1f} ms, "
               f"{agents} agents (with their used resources) in {add_agents * 1000:.0f} ms")
    times: list[float] = []
    declines: list[float] = []
    for round_ in range(rounds):
        now = float(round_)
        gc.collect()
        started = time.perf_counter()
        offers = allocator.allocate(now)
        elapsed = time.perf_counter() - started
        times.append(elapsed)
        started = time.perf_counter()
        for offer in offers:
            allocator.recover(offer.framework_id, offer.role, offer.agent_id, offer.resources,
                              now=now, refuse_seconds=INT_MAX)
        declines.append(time.perf_counter() - started)
        report.say(f"round {round_} allocate() took {elapsed * 1000:.1f} ms to make "
                   f"{len(offers)} offers; declining them took {declines[-1] * 1000:.1f} ms")
    report.say(f"allocate() over rounds 0..{rounds - 1}: min {min(times) * 1000:.1f} ms, "
               f"median {statistics.median(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms")
    report.checks.append(Check(f"{shape}: allocate() (max of {rounds} rounds)", max(times),
                               mesos, target))
    report.checks.append(Check(f"{shape}: {frameworks} x add_framework", add_frameworks,
                               mesos_setup[0], None))
    report.checks.append(Check(f"{shape}: {agents} x add_agent + allocate_resources",
                               add_agents, mesos_setup[1], None))


def naive_floor(report: Report, agents: int, frameworks: int) -> None:
    """Every (agent, framework) pair once, with a set-membership check (no Resources at all)."""
    filtered = {(f"framework-{i % frameworks}", f"agent-{i}") for i in range(agents)}
    agent_ids = [f"agent-{i}" for i in range(agents)]
    framework_ids = [f"framework-{i}" for i in range(frameworks)]
    started = time.perf_counter()
    hits = 0
    for agent_id in agent_ids:
        for framework_id in framework_ids:
            if (framework_id, agent_id) in filtered:
                hits += 1
    elapsed = time.perf_counter() - started
    report.say(f"naive loop over {agents} x {frameworks} pairs: {elapsed * 1000:.0f} ms")
    report.checks.append(Check(f"naive per-pair loop {agents} x {frameworks} (baseline)",
                               elapsed, "", None))


def large_and_small_quota(report: Report) -> None:
    small_roles, large_roles = 2500, 500
    agents = small_roles // 5 + large_roles * 5
    shape = f"LargeAndSmallQuota {agents} agents, {small_roles + large_roles} roles"
    report.say(f"\n== {shape}")
    allocator = Allocator(seed=1)
    started = time.perf_counter()
    agent = parse("cpus:2;mem:2048;disk:2048")
    for i in range(agents):
        allocator.add_agent(f"agent-{i}", agent)
    add_agents = time.perf_counter() - started
    started = time.perf_counter()
    small = [f"smallQuotaRole{i}" for i in range(small_roles)]
    large = [f"largeQuotaRole{i}" for i in range(large_roles)]
    for i, role in enumerate(small):
        allocator.add_framework(f"framework_small_{i}", [role])
    for i, role in enumerate(large):
        allocator.add_framework(f"framework_large_{i}", [role])
    add_frameworks = time.perf_counter() - started
    small_quota = parse("cpus:1;mem:1024;disk:1024")
    large_quota = parse("cpus:4;mem:4096;disk:4096")
    for role in small:
        allocator.set_quota(role, small_quota, small_quota)
    for role in large:
        allocator.set_quota(role, large_quota, large_quota)
    report.say(f"added {agents} agents in {add_agents * 1000:.0f} ms, "
               f"{small_roles + large_roles} frameworks in {add_frameworks * 1000:.0f} ms")
    gc.collect()
    started = time.perf_counter()
    first = allocator.allocate(1.0)
    first_time = time.perf_counter() - started
    report.say(f"Made {len(first)} allocations in {first_time * 1000:.1f} ms (Mesos: 3500)")
    met = sum(1 for role in small + large
              if allocator.quota_consumed(role) == (small_quota if role in small
                                                    else large_quota).scalars())
    report.say(f"roles whose guarantee is met: {met} of {small_roles + large_roles}")
    gc.collect()
    started = time.perf_counter()
    second = allocator.allocate(2.0)
    second_time = time.perf_counter() - started
    report.say(f"Made {len(second)} allocation in {second_time * 1000:.1f} ms")
    report.checks.append(Check(f"{shape}: {agents} x add_agent", add_agents, "78-91 ms", None))
    report.checks.append(Check(f"{shape}: {small_roles + large_roles} x add_framework",
                               add_frameworks, "16.7-19.7 s", None))
    report.checks.append(Check(f"{shape}: first allocate()", first_time, "~15.4 s", 5.0,
                               note=f"{len(first)} allocations"))
    report.checks.append(Check(f"{shape}: allocation count", 0.0, "3500", None,
                               note=f"{len(first)} (must be 3500)"))
    if len(first) != 3500 or met != small_roles + large_roles:
        report.checks[-1].target = -1.0  # a wrong allocation fails the run
    report.checks.append(Check(f"{shape}: second allocate(), nothing left", second_time,
                               "~13.7 s", 0.1, note=f"{len(second)} allocations"))
    if second:
        report.checks[-1].target = -1.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer rounds and no naive baseline loop")
    parser.add_argument("--rounds", type=int, default=None,
                        help="DeclineOffers rounds (default 5, 2 with --quick)")
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 5)
    report = Report()
    report.say(f"Python {sys.version.split()[0]} on {os.uname().machine}, "
               f"{os.cpu_count()} CPUs; pure allocator, one call per timing")
    decline_offers(report, 2000, 200, rounds, 0.1, "~2.9 s (0.28)")
    decline_offers(report, 10_000, 1000, rounds, 1.0, "~1.06 s (1.7.1, C++)",
                   ("29-40 ms (1.7.1)", "1.61 s (1.7.1)"))
    if not args.quick:
        naive_floor(report, 10_000, 1000)
    large_and_small_quota(report)
    report.say("\n== Summary (ours beside Mesos's published figure)")
    width = max(len(c.name) for c in report.checks)
    for check in report.checks:
        verdict = "" if check.target is None and not check.note else (
            "PASS" if check.passed else "FAIL")
        target = f"<= {check.target:g} s" if check.target is not None and check.target >= 0 \
            else ""
        ours = f"{check.ours * 1000:9.1f} ms" if check.ours else " " * 12
        report.say(f"{check.name:<{width}}  ours {ours}  Mesos {check.mesos:<22} "
                   f"{target:<9} {verdict} {check.note}".rstrip())
    failed = [c for c in report.checks if not c.passed]
    report.say("ALL PASS" if not failed else f"{len(failed)} FAILED")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
