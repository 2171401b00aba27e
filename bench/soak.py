"""Soak: 3 masters (ZooKeeper), 3 agents and a scheduler launching tasks without pause, while
masters and agents are killed with SIGKILL and restarted at random.

    .venv/bin/python bench/soak.py [--duration 300] [--no-agent-kills]

Prints tasks launched, tasks lost (a task that started and did not end TASK_FINISHED, or one
the scheduler never heard of again), status updates lost (a task that finished without the
STARTING and RUNNING before it), launches refused before the task started (the scheduler was
told: TASK_DROPPED for a stale offer, TASK_LOST/UNKNOWN for an ACCEPT a dying master or agent
never passed on), and the longest time no master led. Exits 1 when anything was lost. The
scheduler is the kind a user writes: it finds the leader in ZooKeeper, re-subscribes with its
framework id after any break, reconciles explicitly what it has not heard the end of, and
acknowledges every update.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from agent_runtime.detector import MasterDetector
from agent_runtime.proto import mesos_pb2, scheduler_pb2
from agent_runtime.scheduler.client import SchedulerClient
from agent_runtime.task_states import TERMINAL_STATES
from tests.harness.framework import command_task
from tests.harness.ha import HACluster
from tests.harness.zookeeper import zookeeper_server

Event = scheduler_pb2.Event
# The masters' defaults (--agent_ping_timeout=15secs, --max_agent_ping_timeouts=5): a task on an
# agent that stays away is reported only after this long, so a drain must outlast it.
AGENT_PING_WINDOW = 15.0 * 5


@dataclass
class Ledger:
    launched: int = 0
    states: dict[str, list[int]] = field(default_factory=dict)
    resubscribes: int = 0

    def record(self, status: mesos_pb2.TaskStatus) -> None:
        if status.reason == mesos_pb2.TaskStatus.REASON_RECONCILIATION and (
                status.state not in TERMINAL_STATES and status.state != mesos_pb2.TASK_UNKNOWN):
            return  # "still running": nothing new
        self.states.setdefault(status.task_id.value, []).append(status.state)

    def final(self, task_id: str) -> int | None:
        ended = [s for s in self.states.get(task_id, [])
                 if s in TERMINAL_STATES or s == mesos_pb2.TASK_UNKNOWN]
        return ended[-1] if ended else None

    def started(self, task_id: str) -> bool:
        return bool({mesos_pb2.TASK_STARTING, mesos_pb2.TASK_RUNNING}
                    & set(self.states.get(task_id, [])))


class Scheduler:
    def __init__(self, zk: str, ledger: Ledger, in_flight: int) -> None:
        self.zk = zk
        self.ledger = ledger
        self.in_flight = in_flight
        self.info = mesos_pb2.FrameworkInfo(user="root", name="soak", checkpoint=True,
                                            failover_timeout=3600)
        self.info.capabilities.add(type=mesos_pb2.FrameworkInfo.Capability.PARTITION_AWARE)
        self.launching = True
        self.reconciled = 0.0

    def _open(self) -> int:
        return sum(1 for t in self.ledger.states if self.ledger.final(t) is None)

    async def run(self) -> None:
        while True:
            detector = MasterDetector(self.zk, session_timeout=5)
            try:
                master = await detector.leader()
                async with SchedulerClient(master, self.info) as client:
                    await self._session(client)
            except asyncio.CancelledError:
                raise
            except Exception:
                await asyncio.sleep(0.3)  # no leader yet, or it just died: look again
            finally:
                await asyncio.to_thread(detector.close)
            self.ledger.resubscribes += 1

    async def _reconcile(self, client: SchedulerClient) -> None:
        call = scheduler_pb2.Call(type=scheduler_pb2.Call.RECONCILE)
        for task_id in self.ledger.states:
            if self.ledger.final(task_id) is None:
                call.reconcile.tasks.add().task_id.value = task_id
        await client.call(call)
        self.reconciled = time.monotonic()

    async def _session(self, client: SchedulerClient) -> None:
        async for event in client.events():
            if event.type == Event.SUBSCRIBED or time.monotonic() - self.reconciled > 5:
                await self._reconcile(client)
            if event.type == Event.OFFERS:
                await self._offers(client, list(event.offers.offers))
            elif event.type == Event.UPDATE:
                status = event.update.status
                self.ledger.record(status)
                if status.uuid:
                    await client.acknowledge(status)

    async def _offers(self, client: SchedulerClient, offers: list[mesos_pb2.Offer]) -> None:
        for offer in offers:
            room = self.in_flight - self._open() if self.launching else 0
            tasks = []
            for _ in range(max(0, min(room, 4))):
                task = command_task(offer, "sleep 1", f"soak-{uuid.uuid4().hex[:12]}",
                                    cpus=0.1, mem=16)
                tasks.append(task)
                self.ledger.states[task.task_id.value] = []
            self.ledger.launched += len(tasks)
            await client.accept([offer.id.value], tasks, refuse_seconds=1)


def _leading(cluster: HACluster) -> bool:
    for index in range(3):
        with contextlib.suppress(OSError, urllib.error.URLError):
            request = urllib.request.Request(cluster.url(index) + "/master/state")
            with urllib.request.urlopen(request, timeout=0.5) as response:
                if response.status == 200:
                    return True
    return False


async def leader_watch(cluster: HACluster, gaps: list[float]) -> None:
    since: float | None = None
    while True:
        leading = await asyncio.to_thread(_leading, cluster)
        now = time.monotonic()
        if leading and since is not None:
            gaps.append(now - since)
            since = None
        elif not leading and since is None:
            since = now
        await asyncio.sleep(0.1)


async def chaos(cluster: HACluster, rng: random.Random, kill_agents: bool, log: list[str],
                every: float) -> None:
    while True:
        await asyncio.sleep(rng.uniform(every / 2, every * 1.5))
        targets = [f"master{i}" for i in range(3)]
        if kill_agents:
            targets += [f"agent{i}" for i in range(len(cluster.agent_ports))]
        name = rng.choice(targets)
        cluster.kill(name, signal.SIGKILL)
        log.append(f"{time.strftime('%H:%M:%S')} killed {name}")
        await asyncio.sleep(rng.uniform(0.5, 3.0))
        if name.startswith("master"):
            cluster.start_master_n(int(name[len("master"):]))
        else:
            cluster.start_agent(int(name[len("agent"):]))
        log.append(f"{time.strftime('%H:%M:%S')} restarted {name}")


async def soak(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as work_dir, zookeeper_server(work_dir) as zk:
        cluster = HACluster(work_dir, zk, agents=3)
        try:
            for index in range(3):
                cluster.start_master_n(index)
            for index in range(3):
                cluster.start_agent(index)
            ledger = Ledger()
            scheduler = Scheduler(cluster.zk, ledger, args.in_flight)
            gaps: list[float] = []
            events: list[str] = []
            jobs = [asyncio.create_task(scheduler.run()),
                    asyncio.create_task(leader_watch(cluster, gaps))]
            await asyncio.sleep(5)
            jobs.append(asyncio.create_task(
                chaos(cluster, rng, not args.no_agent_kills, events, args.every)))
            started = time.monotonic()
            await asyncio.sleep(args.duration)
            elapsed = time.monotonic() - started
            jobs[-1].cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await jobs[-1]
            # Chaos may stop between a kill and its restart; a process left dead would hold
            # its tasks RUNNING until the ping timeout and count them lost: the soak would
            # measure itself, not the runtime.
            for name in cluster.revive():
                events.append(f"{time.strftime('%H:%M:%S')} restarted {name} (end of chaos)")
            scheduler.launching = False
            deadline = time.monotonic() + max(args.drain, AGENT_PING_WINDOW + 15)
            while time.monotonic() < deadline and any(
                    ledger.final(t) is None for t in ledger.states):
                await asyncio.sleep(1)
            for job in jobs:
                job.cancel()
        finally:
            cluster.stop()
    unfinished = [t for t in ledger.states if ledger.final(t) != mesos_pb2.TASK_FINISHED]
    # Refused: ended before it started, and the scheduler was told (it would launch again).
    refused = sorted(t for t in unfinished
                     if not ledger.started(t) and ledger.final(t) is not None)
    lost = sorted(t for t in unfinished if t not in refused)
    updates_lost = sorted(
        t for t, s in ledger.states.items()
        if ledger.final(t) == mesos_pb2.TASK_FINISHED
        and not {mesos_pb2.TASK_STARTING, mesos_pb2.TASK_RUNNING} <= set(s))
    print("\n".join(events))
    kills = sum(1 for line in events if " killed " in line)
    print(f"soak: {elapsed:.0f} s of chaos ({kills} kills, agents "
          f"{'spared' if args.no_agent_kills else 'killed too'}), {ledger.resubscribes} "
          "scheduler re-subscriptions")
    print(f"tasks launched:        {ledger.launched}")
    print(f"tasks finished:        {ledger.launched - len(unfinished)}")
    print(f"launches refused before start (scheduler told): {len(refused)}")
    print(f"tasks lost:            {len(lost)}  (must be 0)")
    print(f"status updates lost:   {len(updates_lost)}  (must be 0)")
    print(f"longest without leader: {max(gaps, default=0.0):.1f} s")
    for task_id in lost[:10]:
        names = [mesos_pb2.TaskState.Name(s) for s in ledger.states[task_id]]  # type: ignore[arg-type]
        print(f"  lost {task_id}: {names}")
    return 0 if not lost and not updates_lost else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of chaos")
    parser.add_argument("--every", type=float, default=10.0, help="mean seconds between kills")
    parser.add_argument("--drain", type=float, default=AGENT_PING_WINDOW + 15,
                        help="seconds to let tasks end (never less than the agent ping "
                             "timeout and a margin)")
    parser.add_argument("--in-flight", type=int, default=12, help="tasks kept running")
    parser.add_argument("--no-agent-kills", action="store_true", help="kill masters only")
    parser.add_argument("--seed", type=int, default=1)
    return asyncio.run(soak(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
