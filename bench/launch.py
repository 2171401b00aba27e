"""Command-task launch latency and throughput through the scheduler API, against a direct spawn.

Starts a real master and agent (``tests/cluster.py``) in a temporary directory and drives the v1
scheduler API with :class:`SchedulerClient` (protobuf on the wire). In one run it measures:

(a) latency: ``--latency-runs`` sequential launches of one command task, each timed from just
    before the ACCEPT POST to receipt of the task's TASK_RUNNING update. Each launch waits for
    TASK_FINISHED, so launches never overlap. The baseline is interleaved with it (ABAB): a
    ``Popen`` of the same ``/bin/sh -c <command>`` that the command executor runs, with the same
    options, timed until ``Popen`` returns (the child has exec'd: it is running).
(b) throughput: ``--tasks`` tasks, as many per ACCEPT as the outstanding offers hold, every update
    acknowledged, timed from the first ACCEPT POST to receipt of the last TASK_FINISHED. The
    baseline is the same number of direct spawn+wait of the command, one after the other.

It also splits the latency into stages, using the executor's own status timestamps (the
executor stamps ``time.time()`` just before it POSTs each update; every process here shares
the host clock), and times a bare ``python -S`` start of the command executor: that process
start is a floor under every launch.

With ``--batch N`` it runs batch mode instead (issue 16's launch target): ``--batches`` rounds,
each one ACCEPT carrying N command tasks on the one agent, waiting until all N are RUNNING and
finished (and their executors gone) before the next round. It reports the median and p99 of
ACCEPT->TASK_RUNNING over all tasks and tasks/s: tasks reaching RUNNING per second of the rounds'
wall time, each round timed from its ACCEPT POST to receipt of its last TASK_RUNNING (the waits
for the tasks to finish between rounds are left out; the rate over the whole run, those waits
included, is printed beside it). The baselines are the same Popen as above, N per round
interleaved with the rounds (latency), and N x rounds sequential spawn+wait (throughput).

Run: ``.venv/bin/python bench/launch.py [--tasks 100] [--latency-runs 50] [--json out.json]``
     ``.venv/bin/python bench/launch.py --batch 10 --batches 30``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from operator import contains
from types import FrameType
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import psutil  # noqa: E402

from agent_runtime.containerizer.mesos import executor_argv  # noqa: E402
from agent_runtime.proto import mesos_pb2, scheduler_pb2  # noqa: E402
from agent_runtime.scheduler.client import SchedulerClient  # noqa: E402
from agent_runtime.task_states import TERMINAL_STATES  # noqa: E402
from tests.harness.cluster import Cluster  # noqa: E402

Event = scheduler_pb2.Event
TaskState = int
TARGET_P50_MS = 50.0
TARGET_100_TASKS_S = 10.0
TARGET_BATCH_P50_MS = 50.0
TARGET_BATCH_TASKS_PER_S = 200.0


# Statistics -------------------------------------------------------------------------------------
def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (p99 of 50 samples is the maximum)."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def state_name(state: int | None) -> str:
    if state is None:
        return "none"
    return mesos_pb2.TaskState.Name(mesos_pb2.TaskState.ValueType(state))


def p50(samples: Sequence[float]) -> float:
    return statistics.median(samples) if samples else math.nan


# Scheduler side ---------------------------------------------------------------------------------
@dataclass(slots=True)
class TaskTimes:
    """Wall-clock times (``time.time()``) of one task's life, seen by the scheduler."""

    accept_sent: float
    accept_done: float = math.nan
    received: dict[TaskState, float] = field(default_factory=dict)  # state -> receipt time
    stamped: dict[TaskState, float] = field(default_factory=dict)   # state -> status.timestamp
    terminal: TaskState | None = None
    message: str = ""

    def is_done(self) -> bool:
        return self.terminal is not None


class BenchScheduler:
    """Subscribes, collects offers, records and acknowledges updates; launches on request."""

    def __init__(self, client: SchedulerClient, task_cpus: float, task_mem: float,
                 command: str) -> None:
        self.client = client
        self.task_cpus_m = round(task_cpus * 1000)
        self.task_mem_m = round(task_mem * 1000)
        self.command = command
        self.tasks: dict[str, TaskTimes] = {}
        self.offers: dict[str, mesos_pb2.Offer] = {}
        self._offer_arrived = asyncio.Event()
        self._subscribed = asyncio.Event()
        self._changed = asyncio.Event()  # set on every UPDATE
        self._background: set[asyncio.Task[None]] = set()
        self._next_id = 0
        self.exited_executors: set[str] = set()  # from FAILURE events (executor exits)
        self.ack_errors: list[str] = []
        self.failure: BaseException | None = None

    # Event stream ------------------------------------------------------------------------
    async def pump(self) -> None:
        try:
            async for event in self.client.events():
                self._on_event(event)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # surfaced to waiters, the stream is our lifeline
            self.failure = exc
        else:
            self.failure = RuntimeError("the master closed the scheduler event stream")
        self._changed.set()
        self._offer_arrived.set()

    def _on_event(self, event: Any) -> None:
        now = time.time()
        if event.type == Event.UPDATE:
            self._on_update(event.update.status, now)
        elif event.type == Event.OFFERS:
            for offer in event.offers.offers:
                self.offers[offer.id.value] = offer
            self._offer_arrived.set()
        elif event.type == Event.RESCIND:
            self.offers.pop(event.rescind.offer_id.value, None)
        elif event.type == Event.FAILURE:
            if event.failure.HasField("executor_id"):
                self.exited_executors.add(event.failure.executor_id.value)
                self._changed.set()
        elif event.type == Event.SUBSCRIBED:
            self._subscribed.set()
        elif event.type == Event.ERROR:
            self.failure = RuntimeError(f"master sent ERROR: {event.error.message}")
            self._changed.set()

    def _on_update(self, status: Any, now: float) -> None:
        times = self.tasks.get(status.task_id.value)
        if times is not None:
            times.received.setdefault(status.state, now)
            if status.HasField("timestamp"):
                times.stamped.setdefault(status.state, status.timestamp)
            if status.state in TERMINAL_STATES and times.terminal is None:
                times.terminal = status.state
                times.message = status.message
        if status.uuid:
            self._spawn(self._acknowledge(status))
        self._changed.set()

    async def _acknowledge(self, status: Any) -> None:
        try:
            await self.client.acknowledge(status)
        except Exception as exc:  # the run goes on; the report lists it
            self.ack_errors.append(f"{status.task_id.value}: {exc}")

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _check(self) -> None:
        if self.failure is not None:
            raise RuntimeError(f"scheduler stream failed: {self.failure!r}") from self.failure

    async def wait_subscribed(self, timeout: float) -> None:
        await asyncio.wait_for(self._subscribed.wait(), timeout)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            self._check()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
            self._changed.clear()
            if predicate():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    # Offers and launches -------------------------------------------------------------------
    async def take_offers(self, timeout: float) -> list[mesos_pb2.Offer]:
        """Every outstanding offer, waiting for one if there is none."""
        deadline = time.monotonic() + timeout
        while not self.offers:
            self._check()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no offer within {timeout:g}s")
            self._offer_arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._offer_arrived.wait(), left)
        offers = list(self.offers.values())
        self.offers.clear()
        return offers

    async def take_offers_for(self, count: int, timeout: float) -> list[mesos_pb2.Offer]:
        """Outstanding offers that together hold ``count`` tasks, waiting for more as the
        resources of finished tasks come back."""
        deadline = time.monotonic() + timeout
        while True:
            offers = await self.take_offers(max(0.1, deadline - time.monotonic()))
            if self.fit(offers) >= count:
                return offers
            self.give_back(offers)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"offers did not hold {count} tasks within {timeout:g}s")
            self._offer_arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._offer_arrived.wait(), left)

    def give_back(self, offers: list[mesos_pb2.Offer]) -> None:
        for offer in offers:
            self.offers.setdefault(offer.id.value, offer)

    def fit(self, offers: list[mesos_pb2.Offer]) -> int:
        """How many tasks the offers hold (all offers come from the one agent)."""
        cpus = mem = 0
        for offer in offers:
            for resource in offer.resources:
                if resource.name == "cpus":
                    cpus += round(resource.scalar.value * 1000)
                elif resource.name == "mem":
                    mem += round(resource.scalar.value * 1000)
        return min(cpus // self.task_cpus_m, mem // self.task_mem_m)

    def task_info(self, agent_id: str, prefix: str) -> mesos_pb2.TaskInfo:
        task_id = f"{prefix}-{self._next_id}"
        self._next_id += 1
        task = mesos_pb2.TaskInfo(name=task_id)
        task.task_id.value = task_id
        task.agent_id.value = agent_id
        task.command.value = self.command
        for name, millis in (("cpus", self.task_cpus_m), ("mem", self.task_mem_m)):
            resource = task.resources.add(name=name, type=mesos_pb2.Value.SCALAR)
            resource.scalar.value = millis / 1000
        return task

    async def launch(self, offers: list[mesos_pb2.Offer], count: int, prefix: str
                     ) -> list[str]:
        """ACCEPT ``offers`` with ``count`` tasks; what is left is offered again at once."""
        agent_id = offers[0].agent_id.value
        tasks = [self.task_info(agent_id, prefix) for _ in range(count)]
        sent = time.time()
        for task in tasks:
            self.tasks[task.task_id.value] = TaskTimes(accept_sent=sent)
        await self.client.accept([o.id.value for o in offers], tasks, refuse_seconds=0)
        done = time.time()
        for task in tasks:
            self.tasks[task.task_id.value].accept_done = done
        return [t.task_id.value for t in tasks]

    async def close(self) -> None:
        for task in list(self._background):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(task), 2.0)


# Baseline ---------------------------------------------------------------------------------------
def spawn_args(command: str, cwd: str) -> dict[str, Any]:
    """What the command executor passes to ``Popen`` for a shell command task."""
    return {"args": ["/bin/sh", "-c", command], "env": dict(os.environ), "cwd": cwd,
            "stdin": subprocess.DEVNULL, "start_new_session": True, "close_fds": True}


def baseline_spawn(command: str, cwd: str) -> float:
    """Seconds from just before ``Popen`` to its return (the child is running); then reaped."""
    kwargs = spawn_args(command, cwd)
    started = time.perf_counter()
    process = subprocess.Popen(**kwargs)
    elapsed = time.perf_counter() - started
    process.wait()
    return elapsed


def baseline_throughput(command: str, cwd: str, count: int) -> float:
    """Seconds for ``count`` sequential spawn+wait of the command."""
    kwargs = spawn_args(command, cwd)
    started = time.perf_counter()
    for _ in range(count):
        subprocess.Popen(**kwargs).wait()
    return time.perf_counter() - started


def executor_start(cwd: str, runs: int) -> list[float]:
    """The command executor as the agent starts it (``python -S``), without its environment:
    imports, then exits 2."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESOS_")}
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(executor_argv(mesos_pb2.ExecutorInfo(), True), env=env, cwd=cwd,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
        samples.append(time.perf_counter() - started)
    return samples


# The benchmark ----------------------------------------------------------------------------------
@dataclass(slots=True)
class Results:
    latency_ms: list[float] = field(default_factory=list)
    baseline_spawn_ms: list[float] = field(default_factory=list)
    stages_ms: dict[str, list[float]] = field(default_factory=dict)
    throughput_tasks: int = 0
    throughput_s: float = math.nan
    throughput_finished: int = 0
    throughput_other: dict[str, int] = field(default_factory=dict)
    throughput_accepts: int = 0
    throughput_max_per_accept: int = 0
    baseline_throughput_s: float = math.nan
    executor_start_ms: list[float] = field(default_factory=list)
    cpu_s: dict[str, float] = field(default_factory=dict)  # CPU used in the throughput run
    ack_errors: list[str] = field(default_factory=list)


STARTING, RUNNING, FINISHED = mesos_pb2.TASK_STARTING, mesos_pb2.TASK_RUNNING, \
    mesos_pb2.TASK_FINISHED
STAGES: list[tuple[str, Callable[[TaskTimes], float]]] = [
    ("ACCEPT POST -> 202 Accepted",
     lambda t: t.accept_done - t.accept_sent),
    ("ACCEPT -> executor stamps STARTING",
     lambda t: t.stamped[STARTING] - t.accept_sent),
    ("executor STARTING -> RUNNING (spawn)",
     lambda t: t.stamped[RUNNING] - t.stamped[STARTING]),
    ("executor STARTING -> sched receives it",
     lambda t: t.received[STARTING] - t.stamped[STARTING]),
    ("sched gets STARTING -> gets RUNNING",
     lambda t: t.received[RUNNING] - t.received[STARTING]),
    ("executor RUNNING -> sched receives it",
     lambda t: t.received[RUNNING] - t.stamped[RUNNING]),
]


async def run_latency(sched: BenchScheduler, results: Results, runs: int, warmup: int,
                      command: str, cwd: str, timeout: float) -> None:
    for index in range(warmup + runs):
        spawn = baseline_spawn(command, cwd)  # A: the baseline, while the cluster is idle
        offers = await sched.take_offers(timeout)
        if sched.fit(offers) < 1:
            raise RuntimeError("the offers cannot hold one task: lower --cpus/--mem")
        (task_id,) = await sched.launch(offers, 1, "lat")  # B: ours
        times = sched.tasks[task_id]
        await sched.wait_until(times.is_done, timeout, f"task {task_id} to finish")
        if times.terminal != FINISHED or RUNNING not in times.received:
            raise RuntimeError(f"task {task_id} ended {state_name(times.terminal)}"
                               f" ({times.message})")
        # The command executor's id is the task id; let it exit so launches never overlap.
        with contextlib.suppress(TimeoutError):
            await sched.wait_until(partial(contains, sched.exited_executors, task_id), 5.0,
                                   f"executor {task_id} to exit")
        if index < warmup:
            continue
        results.baseline_spawn_ms.append(spawn * 1000)
        results.latency_ms.append((times.received[RUNNING] - times.accept_sent) * 1000)
        for name, stage in STAGES:
            with contextlib.suppress(KeyError):
                results.stages_ms.setdefault(name, []).append(stage(times) * 1000)


async def run_throughput(sched: BenchScheduler, results: Results, count: int,
                         timeout: float) -> None:
    launched: list[str] = []
    first_accept: float | None = None
    deadline = time.monotonic() + timeout
    while len(launched) < count:
        offers = await sched.take_offers(max(0.1, deadline - time.monotonic()))
        fit = min(sched.fit(offers), count - len(launched))
        if fit < 1:
            # Too small on their own: keep them and ACCEPT them with the next ones.
            sched.give_back(offers)
            await asyncio.sleep(0.001)
            continue
        if first_accept is None:
            first_accept = time.time()
        launched += await sched.launch(offers, fit, "tput")
        results.throughput_accepts += 1
        results.throughput_max_per_accept = max(results.throughput_max_per_accept, fit)
    await sched.wait_until(
        lambda: all(sched.tasks[t].terminal is not None for t in launched),
        max(0.1, deadline - time.monotonic()), f"{count} tasks to finish",
    )
    assert first_accept is not None
    last = max(max(sched.tasks[t].received.values()) for t in launched)
    results.throughput_tasks = count
    results.throughput_s = last - first_accept
    for task_id in launched:
        state = sched.tasks[task_id].terminal
        if state == FINISHED:
            results.throughput_finished += 1
        else:
            name = state_name(state)
            results.throughput_other[name] = results.throughput_other.get(name, 0) + 1


@dataclass(slots=True)
class BatchResults:
    """Batch mode: one ACCEPT of ``size`` tasks per round."""

    size: int = 0
    rounds: int = 0
    latency_ms: list[float] = field(default_factory=list)       # every task, ACCEPT->RUNNING
    round_s: list[float] = field(default_factory=list)          # ACCEPT -> last RUNNING
    wall_s: float = math.nan                                    # first ACCEPT -> last RUNNING
    baseline_spawn_ms: list[float] = field(default_factory=list)
    baseline_throughput_s: float = math.nan
    stages_ms: dict[str, list[float]] = field(default_factory=dict)
    ack_errors: list[str] = field(default_factory=list)

    def tasks(self) -> int:
        return len(self.latency_ms)

    def rate(self) -> float:
        """Tasks reaching RUNNING per second of the rounds' own wall time."""
        spent = sum(self.round_s)
        return self.tasks() / spent if spent else math.nan

    def wall_rate(self) -> float:
        return self.tasks() / self.wall_s if self.wall_s else math.nan


def all_done(sched: BenchScheduler, task_ids: list[str]) -> bool:
    return all(sched.tasks[t].is_done() for t in task_ids)


async def run_batches(sched: BenchScheduler, batch: BatchResults, rounds: int, warmup: int,
                      command: str, cwd: str, timeout: float) -> None:
    first_accept = math.nan
    for index in range(warmup + rounds):
        # A: the baseline, one spawn per task, while the cluster is idle
        spawns = [baseline_spawn(command, cwd) for _ in range(batch.size)]
        offers = await sched.take_offers_for(batch.size, timeout)
        launched = await sched.launch(offers, batch.size, "batch")  # B: ours
        await sched.wait_until(
            partial(all_done, sched, launched), timeout,
            f"{batch.size} batch tasks to finish")
        for task_id in launched:
            times = sched.tasks[task_id]
            if times.terminal != FINISHED or RUNNING not in times.received:
                raise RuntimeError(f"task {task_id} ended {state_name(times.terminal)}"
                                   f" ({times.message})")
        # Each command executor's id is its task id; let them exit so rounds never overlap.
        with contextlib.suppress(TimeoutError):
            await sched.wait_until(partial(sched.exited_executors.issuperset, launched), 5.0,
                                   f"{batch.size} executors to exit")
        if index < warmup:
            continue
        sent = sched.tasks[launched[0]].accept_sent
        last_running = max(sched.tasks[t].received[RUNNING] for t in launched)
        if math.isnan(first_accept):
            first_accept = sent
        batch.wall_s = last_running - first_accept
        batch.round_s.append(last_running - sent)
        batch.rounds += 1
        batch.baseline_spawn_ms += [s * 1000 for s in spawns]
        for task_id in launched:
            times = sched.tasks[task_id]
            batch.latency_ms.append((times.received[RUNNING] - times.accept_sent) * 1000)
            for name, stage in STAGES:
                with contextlib.suppress(KeyError):
                    batch.stages_ms.setdefault(name, []).append(stage(times) * 1000)


class CpuMeter:
    """CPU seconds of the master, the agent, the agent's reaped children and this process."""

    def __init__(self, cluster: Cluster) -> None:
        self.master = psutil.Process(cluster.processes["master"].pid)
        self.agent = psutil.Process(cluster.processes["agent0"].pid)
        self.me = psutil.Process()

    def sample(self) -> dict[str, float]:
        master, agent, me = (p.cpu_times() for p in (self.master, self.agent, self.me))
        return {
            "master": master.user + master.system,
            "agent": agent.user + agent.system,
            "executors+tasks": agent.children_user + agent.children_system,
            "scheduler (bench)": me.user + me.system,
        }


async def drive(cluster: Cluster, args: argparse.Namespace, results: Results,
                scratch: str, batch: BatchResults | None = None) -> None:
    info = mesos_pb2.FrameworkInfo(user=getpass.getuser(), name="bench-launch",
                                   checkpoint=args.checkpoint)
    async with SchedulerClient(cluster.master, info) as client:
        sched = BenchScheduler(client, args.cpus, args.mem, args.command)
        pump = asyncio.get_running_loop().create_task(sched.pump())
        try:
            await sched.wait_subscribed(args.timeout)
            if batch is not None:
                await run_batches(sched, batch, args.batches, args.warmup, args.command,
                                  scratch, args.timeout)
                await sched.close()
                batch.ack_errors = sched.ack_errors
                with contextlib.suppress(Exception):
                    await client.teardown()
                return
            await run_latency(sched, results, args.latency_runs, args.warmup, args.command,
                              scratch, args.timeout)
            meter = CpuMeter(cluster)
            before = meter.sample()
            await run_throughput(sched, results, args.tasks, args.timeout)
            await asyncio.sleep(0.5)  # let the last executors exit and be reaped
            after = meter.sample()
            results.cpu_s = {k: after[k] - before[k] for k in after}
            await sched.close()
            results.ack_errors = sched.ack_errors
            with contextlib.suppress(Exception):
                await client.teardown()
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump


# Report -----------------------------------------------------------------------------------------
def _ratio(ours: float, base: float) -> str:
    if not base or math.isnan(base) or math.isnan(ours):
        return "-"
    return f"{ours / base:.0f}x" if ours / base >= 10 else f"{ours / base:.1f}x"


def report(args: argparse.Namespace, results: Results) -> tuple[str, bool]:
    lat, base = results.latency_ms, results.baseline_spawn_ms
    n = len(lat)
    tasks = results.throughput_tasks
    tput_target = TARGET_100_TASKS_S * tasks / 100
    lat_ok = p50(lat) <= TARGET_P50_MS
    tput_ok = (results.throughput_s <= tput_target
               and results.throughput_finished == tasks)
    ours_rate = tasks / results.throughput_s if results.throughput_s else math.nan
    base_rate = tasks / results.baseline_throughput_s
    lines = [
        f"launch benchmark: command {args.command!r}, task cpus:{args.cpus:g};mem:{args.mem:g},"
        f" {os.cpu_count()} CPUs, python {sys.version.split()[0]},"
        f" load average at start {args.load_at_start:.2f}"
        f"{', checkpointing framework' if args.checkpoint else ''}",
        f"{'metric':<36}{'ours':>10}{'baseline':>10}{'ratio':>8}  {'target':<14}result",
        f"{f'ACCEPT->RUNNING p50 ms (n={n})':<36}{p50(lat):>10.1f}{p50(base):>10.2f}"
        f"{_ratio(p50(lat), p50(base)):>8}  {'<= 50 ms':<14}{'PASS' if lat_ok else 'FAIL'}",
        f"{'ACCEPT->RUNNING p99 ms':<36}{percentile(lat, 99):>10.1f}"
        f"{percentile(base, 99):>10.2f}{_ratio(percentile(lat, 99), percentile(base, 99)):>8}",
        f"{f'{tasks} tasks ACCEPT->FINISHED s':<36}{results.throughput_s:>10.2f}"
        f"{results.baseline_throughput_s:>10.3f}"
        f"{_ratio(results.throughput_s, results.baseline_throughput_s):>8}  "
        f"{f'<= {tput_target:g} s':<14}{'PASS' if tput_ok else 'FAIL'}",
        f"{'throughput tasks/s':<36}{ours_rate:>10.1f}{base_rate:>10.0f}"
        f"{_ratio(base_rate, ours_rate):>8}",
        "baseline: Popen('/bin/sh -c CMD') until it returns (latency); sequential spawn+wait"
        " (throughput). Ratio: how many times slower we are.",
        f"throughput run: {results.throughput_finished}/{tasks} TASK_FINISHED"
        + (f", others {results.throughput_other}" if results.throughput_other else "")
        + f", {results.throughput_accepts} ACCEPTs, up to {results.throughput_max_per_accept}"
          " tasks per ACCEPT"
        + (f", {len(results.ack_errors)} failed ACKs" if results.ack_errors else ""),
        "",
        f"{'where ACCEPT->RUNNING goes (ms)':<40}{'p50':>8}{'p99':>8}",
    ]
    for name, _ in STAGES:
        samples = results.stages_ms.get(name, [])
        lines.append(f"  {name:<38}{p50(samples):>8.1f}{percentile(samples, 99):>8.1f}")
    exe = results.executor_start_ms
    lines.append(f"  {'(ref) python -S command.py, bare start':<38}{p50(exe):>8.1f}"
                 f"{percentile(exe, 99):>8.1f}")
    if results.cpu_s:
        lines.append("")
        lines.append(f"CPU seconds in the throughput run ({tasks} tasks, wall"
                     f" {results.throughput_s:.2f} s, +0.5 s for the last exits): "
                     + ", ".join(f"{k} {v:.2f}" for k, v in results.cpu_s.items()))
    return "\n".join(lines), lat_ok and tput_ok


def report_batch(args: argparse.Namespace, batch: BatchResults) -> tuple[str, bool]:
    lat, base = batch.latency_ms, batch.baseline_spawn_ms
    n = batch.tasks()
    rate, wall_rate = batch.rate(), batch.wall_rate()
    base_rate = n / batch.baseline_throughput_s if batch.baseline_throughput_s else math.nan
    lat_ok = p50(lat) <= TARGET_BATCH_P50_MS
    rate_ok = rate >= TARGET_BATCH_TASKS_PER_S
    lines = [
        f"launch benchmark, batch mode: {batch.rounds} rounds of one ACCEPT with {batch.size}"
        f" tasks on one agent ({args.warmup} warm-up rounds), command {args.command!r},"
        f" task cpus:{args.cpus:g};mem:{args.mem:g}, {os.cpu_count()} CPUs,"
        f" python {sys.version.split()[0]}, load average at start {args.load_at_start:.2f}"
        f"{', checkpointing framework' if args.checkpoint else ''}",
        f"{'metric':<40}{'ours':>10}{'baseline':>10}{'ratio':>8}  {'target':<16}result",
        f"{f'ACCEPT->RUNNING p50 ms (n={n})':<40}{p50(lat):>10.1f}{p50(base):>10.2f}"
        f"{_ratio(p50(lat), p50(base)):>8}  {f'<= {TARGET_BATCH_P50_MS:g} ms':<16}"
        f"{'PASS' if lat_ok else 'FAIL'}",
        f"{'ACCEPT->RUNNING p99 ms':<40}{percentile(lat, 99):>10.1f}"
        f"{percentile(base, 99):>10.2f}{_ratio(percentile(lat, 99), percentile(base, 99)):>8}",
        f"{'round ACCEPT->last RUNNING p50 ms':<40}{p50(batch.round_s) * 1000:>10.1f}",
        f"{'tasks/s (RUNNING / rounds wall time)':<40}{rate:>10.1f}{base_rate:>10.0f}"
        f"{_ratio(base_rate, rate):>8}  {f'>= {TARGET_BATCH_TASKS_PER_S:g} tasks/s':<16}"
        f"{'PASS' if rate_ok else 'FAIL'}",
        f"{'tasks/s over the whole run (info)':<40}{wall_rate:>10.1f}",
        "baseline: Popen('/bin/sh -c CMD') until it returns, one per task, interleaved with the"
        " rounds (latency); sequential spawn+wait of as many tasks (tasks/s)."
        " Ratio: how many times slower we are.",
        "whole run: first ACCEPT to last RUNNING, including the waits for each round to finish"
        " and its executors to exit"
        + (f"; {len(batch.ack_errors)} failed ACKs" if batch.ack_errors else ""),
        "",
        f"{'where ACCEPT->RUNNING goes (ms)':<40}{'p50':>8}{'p99':>8}",
    ]
    for name, _ in STAGES:
        samples = batch.stages_ms.get(name, [])
        lines.append(f"  {name:<38}{p50(samples):>8.1f}{percentile(samples, 99):>8.1f}")
    return "\n".join(lines), lat_ok and rate_ok


def batch_json(batch: BatchResults) -> dict[str, Any]:
    return {
        "batch_size": batch.size, "rounds": batch.rounds,
        "latency_ms": {"p50": p50(batch.latency_ms), "p99": percentile(batch.latency_ms, 99),
                       "samples": batch.latency_ms},
        "baseline_spawn_ms": {"p50": p50(batch.baseline_spawn_ms),
                              "p99": percentile(batch.baseline_spawn_ms, 99)},
        "tasks_per_s": batch.rate(), "tasks_per_s_whole_run": batch.wall_rate(),
        "round_s": batch.round_s, "baseline_throughput_s": batch.baseline_throughput_s,
        "stages_ms_p50": {k: p50(v) for k, v in batch.stages_ms.items()},
    }


def as_json(results: Results) -> dict[str, Any]:
    return {
        "latency_ms": {"p50": p50(results.latency_ms), "p99": percentile(results.latency_ms, 99),
                       "samples": results.latency_ms},
        "baseline_spawn_ms": {"p50": p50(results.baseline_spawn_ms),
                              "p99": percentile(results.baseline_spawn_ms, 99)},
        "stages_ms_p50": {k: p50(v) for k, v in results.stages_ms.items()},
        "throughput": {"tasks": results.throughput_tasks, "seconds": results.throughput_s,
                       "finished": results.throughput_finished,
                       "baseline_seconds": results.baseline_throughput_s},
        "executor_start_ms_p50": p50(results.executor_start_ms),
        "throughput_cpu_s": results.cpu_s,
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--tasks", type=int, default=100, help="tasks in the throughput run")
    parser.add_argument("--latency-runs", type=int, default=50,
                        help="sequential launches timed for latency")
    parser.add_argument("--warmup", type=int, default=3, help="launches before timing starts")
    parser.add_argument("--command", default="true", help="the task's shell command")
    parser.add_argument("--cpus", type=float, default=0.1, help="cpus per task")
    parser.add_argument("--mem", type=float, default=16.0, help="mem (MB) per task")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per wait")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, sandboxes)")
    parser.add_argument("--checkpoint", action="store_true",
                        help="a checkpointing framework (the agent writes its checkpoints)")
    parser.add_argument("--batch", type=int, default=0, metavar="N",
                        help="batch mode: N tasks per ACCEPT, one round at a time"
                             " (replaces the latency and throughput runs)")
    parser.add_argument("--batches", type=int, default=30,
                        help="timed rounds in batch mode")
    args = parser.parse_args(argv)
    if args.tasks < 1 or args.latency_runs < 1 or args.warmup < 0:
        parser.error("--tasks and --latency-runs must be >= 1, --warmup >= 0")
    if args.batch < 0 or args.batches < 1:
        parser.error("--batch must be >= 0 (0: off), --batches >= 1")
    return args


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.load_at_start = os.getloadavg()[0]  # other work on the host skews every figure
    signal.signal(signal.SIGTERM, _terminate)
    work_dir = tempfile.mkdtemp(prefix="bench-launch-")
    scratch = os.path.join(work_dir, "baseline")
    os.makedirs(scratch)
    results = Results()
    cluster = Cluster(work_dir)
    try:
        return _run(args, cluster, results, scratch)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        cluster.stop()
        if args.keep:
            print(f"work dir kept: {work_dir}", file=sys.stderr)
        else:
            shutil.rmtree(work_dir, ignore_errors=True)


def _run(args: argparse.Namespace, cluster: Cluster, results: Results, scratch: str) -> int:
    """Start the cluster, measure, print; the caller stops the cluster whatever happens."""
    cluster.start()
    batch = BatchResults(size=args.batch) if args.batch else None
    try:
        asyncio.run(drive(cluster, args, results, scratch, batch))
    except Exception:
        print(cluster.logs(), file=sys.stderr)
        raise
    if batch is not None:
        batch.baseline_throughput_s = baseline_throughput(args.command, scratch, batch.tasks())
        text, ok = report_batch(args, batch)
        print(text)
        if args.json:
            with open(args.json, "w") as handle:
                json.dump(batch_json(batch), handle, indent=2)
        return 0 if ok else 1
    # The cluster is up and idle while the baselines run, as during the latency runs.
    results.baseline_throughput_s = baseline_throughput(args.command, scratch, args.tasks)
    results.executor_start_ms = [s * 1000 for s in executor_start(scratch, 20)]
    text, ok = report(args, results)
    print(text)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(as_json(results), handle, indent=2)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
