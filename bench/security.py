"""What authentication and executor tokens cost: ACCEPT->TASK_RUNNING latency and scheduler
calls per second, with security on against off, measured side by side in one run.

Two real clusters (``tests/harness/cluster.py``) run at once: "on" with ``--credentials``,
``--authenticate_frameworks``, ``--authenticate_http_readwrite``, ``--authenticate_agents``
(the agent presents ``--credential``) and executor tokens (our default); "off" with none of
these and ``--no-authenticate_http_executors``. Rounds alternate between them (ABAB), so the
noise of a busy machine falls on both alike:

(a) latency: one command task at a time, timed from just before the ACCEPT POST to receipt of
    its TASK_RUNNING (the executor presents its token on SUBSCRIBE and each UPDATE);
(b) throughput: ``--calls`` RECONCILE calls (each one authenticated HTTP call) over
    ``--concurrency`` connections, calls per second.

The target (issue 13): security on is at most 5% slower than off, on both figures.

Run: ``.venv/bin/python bench/security.py [--rounds 6] [--launches 5] [--calls 400]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from agent_runtime.proto import mesos_pb2, scheduler_pb2  # noqa: E402
from agent_runtime.scheduler.client import SchedulerClient  # noqa: E402
from tests.harness.cluster import Cluster  # noqa: E402
from tests.harness.framework import TestFramework, command_task, framework_info  # noqa: E402

Event = scheduler_pb2.Event
PRINCIPAL, SECRET = "bench", "bench-secret"
TARGET = 1.05


def _cluster(work_dir: str, secure: bool) -> Cluster:
    os.makedirs(work_dir)
    if not secure:
        return Cluster(work_dir, agent_flags=["--no-authenticate_http_executors"])
    credentials = os.path.join(work_dir, "credentials")
    with open(credentials, "w") as handle:
        handle.write(f"{PRINCIPAL} {SECRET}\nagent agent-secret\n")
    return Cluster(work_dir, master_flags=[
        f"--credentials={credentials}", "--authenticate_frameworks",
        "--authenticate_http_readwrite", "--authenticate_agents",
    ], agent_flags=['--credential={"principal": "agent", "secret": "agent-secret"}'])


async def _launch_latency(framework: TestFramework) -> float:
    offers = await framework.offers()
    task = command_task(offers[0], "true", task_id=f"t-{uuid.uuid4()}")
    for extra in offers[1:]:
        await framework.client.decline([extra.id.value], refuse_seconds=0)
    start = time.perf_counter()
    await framework.client.accept([offers[0].id.value], [task], refuse_seconds=0)
    await framework.update(task.task_id.value, mesos_pb2.TASK_STARTING)
    await framework.update(task.task_id.value, mesos_pb2.TASK_RUNNING)
    elapsed = time.perf_counter() - start
    await framework.update(task.task_id.value, mesos_pb2.TASK_FINISHED)
    return elapsed


async def _calls_per_second(client: SchedulerClient, calls: int, concurrency: int) -> float:
    queue = list(range(calls))

    async def worker() -> None:
        while queue:
            queue.pop()
            call = scheduler_pb2.Call(type=scheduler_pb2.Call.RECONCILE)
            call.reconcile.SetInParent()
            await client.call(call)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return calls / (time.perf_counter() - start)


async def run(args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    results: dict[str, dict[str, list[float]]] = {
        side: {"latency_ms": [], "calls_per_s": []} for side in ("on", "off")}
    with tempfile.TemporaryDirectory() as work_dir:
        clusters = {"on": _cluster(os.path.join(work_dir, "on"), True),
                    "off": _cluster(os.path.join(work_dir, "off"), False)}
        try:
            for cluster in clusters.values():
                cluster.start()
            frameworks = {}
            for side, cluster in clusters.items():
                auth = (PRINCIPAL, SECRET) if side == "on" else None
                client = SchedulerClient(cluster.master, framework_info(
                    "bench", principal=PRINCIPAL), auth=auth)
                await client.__aenter__()
                frameworks[side] = TestFramework(client, acknowledge_all=True)
                await frameworks[side].start()
            for _ in range(args.rounds):
                for side in ("on", "off"):
                    framework = frameworks[side]
                    for _ in range(args.launches):
                        results[side]["latency_ms"].append(
                            await _launch_latency(framework) * 1000)
                    results[side]["calls_per_s"].append(await _calls_per_second(
                        framework.client, args.calls, args.concurrency))
            for framework in frameworks.values():
                await framework.stop()
                await framework.client.__aexit__(None, None, None)
        finally:
            for cluster in clusters.values():
                cluster.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--launches", type=int, default=5, help="launches per side per round")
    parser.add_argument("--calls", type=int, default=400, help="calls per side per round")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--json", help="write the raw figures here")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    latency = {side: statistics.median(r["latency_ms"]) for side, r in results.items()}
    rate = {side: statistics.median(r["calls_per_s"]) for side, r in results.items()}
    # Paired: each round's on against the same round's off (the machine's load shifts between
    # rounds far more than security costs), then the median of those ratios.
    on, off = results["on"], results["off"]
    slower_launch = statistics.median(a / b for a, b in zip(on["latency_ms"], off["latency_ms"],
                                                             strict=True))
    slower_calls = statistics.median(b / a for a, b in zip(on["calls_per_s"],
                                                           off["calls_per_s"], strict=True))
    print(f"ACCEPT->TASK_RUNNING p50: on {latency['on']:.1f} ms, off {latency['off']:.1f} ms "
          f"(paired on/off {slower_launch:.3f})")
    print(f"scheduler calls/s p50:   on {rate['on']:.0f}, off {rate['off']:.0f} "
          f"(paired off/on {slower_calls:.3f})")
    verdict = "met" if max(slower_launch, slower_calls) <= TARGET else "NOT met"
    print(f"target (security at most {TARGET - 1:.0%} slower): {verdict}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
