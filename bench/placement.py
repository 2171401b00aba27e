"""Seed 002's placement: 10,000 pods over 1,000 cached offers, first come first served.

Target (issue 15): one round placing 10,000 pods over 1,000 offers in <= 1 s.

Workload: 1,000 offers from 1,000 hosts (cpus 0.5..4, mem 512..4096, ports 31000-31099, three
zones, a third already running our executor) and 10,000 pods of 12 shapes (some with a host
port, some with a zone selector, 1 in 50 pinned to a node). The cluster is smaller than the
demand, so thousands of pods find no room: the case where a plain first fit walks every offer
for every pod.

Baseline, side by side in the same process: the same first fit without the per-shape hints (a
plain scan from the first offer for every pod), which must place exactly the same pods on the
same offers; the ratio is what the hints buy.

Run: ``.venv/bin/python bench/placement.py [--pods 10000] [--offers 1000] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from agent_runtime.scheduler.offers import CachedOffer  # noqa: E402
from agent_runtime.scheduler.placement import (  # noqa: E402
    ExecutorRoom,
    FirstComeFirstServed,
    Placed,
    PodRequest,
    Slot,
    fits_executor,
    fits_node,
    fits_ports,
    fits_resources,
)

TARGET_S = 1.0
EXECUTOR = ExecutorRoom("pods-executor", cpus=100, mem=32_000)
ZONES = ("a", "b", "c")


def offers(count: int) -> list[CachedOffer]:
    return [CachedOffer(f"o{i}", f"A{i}", f"host{i}", 500 + (i % 8) * 500,
                        512_000 * (1 + i % 8), ((31000, 31099),), {"zone": ZONES[i % 3]},
                        frozenset({"pods-executor"}) if i % 3 == 0 else frozenset())
            for i in range(count)]


def pods(count: int, hosts: int) -> list[PodRequest]:
    out = []
    for i in range(count):
        shape = i % 12
        ports = (31000 + shape,) if shape % 4 == 0 else ()
        selector = (("zone", ZONES[shape % 3]),) if shape % 3 == 1 else ()
        node = f"host{(i * 7) % hosts}" if i % 50 == 0 else None
        out.append(PodRequest(f"pod{i}", 100 * (1 + shape % 5), 64_000 * (1 + shape % 6),
                              ports, node, selector))
    return out


def plain_first_fit(pod_list: list[PodRequest], offer_list: list[CachedOffer]) -> Placed:
    """The baseline: every pod scans the offers from the first one."""
    slots = [Slot(o, o.cpus, o.mem) for o in offer_list]
    running = {o.hostname for o in offer_list if EXECUTOR.executor_id in o.executor_ids}
    result = Placed()
    for pod in pod_list:
        for slot in slots:
            host = slot.offer.hostname
            if (fits_node(pod, slot.offer) and fits_resources(pod, slot)
                    and fits_ports(pod, slot)
                    and fits_executor(pod, slot, EXECUTOR, host in running)):
                if host not in running:
                    running.add(host)
                    slot.cpus -= EXECUTOR.cpus
                    slot.mem -= EXECUTOR.mem
                slot.cpus -= pod.cpus
                slot.mem -= pod.mem
                slot.used_ports.update(pod.host_ports)
                result.assignments.setdefault(slot.offer.id, []).append(pod)
                break
        else:
            result.unplaced.append(pod)
    return result


def timed(run: object, *args: object) -> tuple[float, Placed]:
    gc.collect()
    started = time.perf_counter()
    result = run(*args)  # type: ignore[operator]
    return time.perf_counter() - started, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--offers", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    offer_list = offers(args.offers)
    pod_list = pods(args.pods, args.offers)
    fcfs = FirstComeFirstServed(EXECUTOR)
    ours: list[float] = []
    plain: list[float] = []
    for _ in range(args.rounds):  # ABAB: both see the same machine load
        elapsed, result = timed(fcfs.place, pod_list, offer_list)
        ours.append(elapsed)
        elapsed, baseline = timed(plain_first_fit, pod_list, offer_list)
        plain.append(elapsed)
    same = ({o: [p.name for p in ps] for o, ps in result.assignments.items()}
            == {o: [p.name for p in ps] for o, ps in baseline.assignments.items()})
    placed = args.pods - len(result.unplaced)
    best, base = min(ours), min(plain)
    print(f"{args.pods} pods over {args.offers} offers: {placed} placed, "
          f"{len(result.unplaced)} waiting; same placement as the plain scan: {same}")
    print(f"FCFS with hints: min {best * 1000:.0f} ms, median "
          f"{statistics.median(ours) * 1000:.0f} ms over {args.rounds} rounds")
    print(f"plain first fit (baseline): min {base * 1000:.0f} ms, median "
          f"{statistics.median(plain) * 1000:.0f} ms; ratio {base / best:.1f}x")
    ok = same and best <= TARGET_S
    print(f"target <= {TARGET_S:.1f} s: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
