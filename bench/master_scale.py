"""The master at production scale: thousands of agents, tens of thousands of tasks.

For each size (``--sizes``, agents), against a real ``mesos-master`` process and the agents of
``bench/agent_emulator.py`` (one process, the real gRPC link), it measures side by side:

- register: all agents registered from cold (seconds, from the emulator's start);
- failover: after ``kill -9`` of the master and a restart on the same registry, all agents
  re-registered with ``--tasks`` tasks each (seconds from the kill and from the new master
  answering HTTP); with ``--zk`` also with ZooKeeper (leader election and the registry there);
- state: ``/master/state`` and the v1 ``GET_STATE`` (JSON and protobuf): latency and size;
- memory: the master's RSS per agent (after registration) and per task (after failover);
- idle CPU: the master's CPU share while every agent is pinged at Mesos's default interval;
- offers: ``--frameworks`` frameworks subscribed over HTTP, declining every offer with a 0 s
  filter: offers delivered per second end to end;
- calls: the same frameworks sending DECLINE, ACCEPT (no operations) and ACKNOWLEDGE calls as
  fast as the master answers: calls per second.

A line of figures per size, then one JSON line of them all. The targets of issue 16 (at
10,000 agents / 100,000 tasks on a 2-core machine) are printed next to the figures.

Run: ``.venv/bin/python bench/master_scale.py [--sizes 1000,5000,10000] [--zk] [--json out]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import psutil  # noqa: E402

from agent_runtime.proto import master_pb2, mesos_pb2, scheduler_pb2  # noqa: E402
from agent_runtime.scheduler.client import SchedulerClient  # noqa: E402
from tests.harness.cluster import VENV_BIN, free_port  # noqa: E402

TARGETS = {"register_s": 20.0, "failover_s": 60.0, "state_s": 2.0, "get_state_s": 2.0,
           "rss_gib": 2.0, "idle_cpu_percent": 20.0, "calls_per_s": 2000.0}


def http(url: str, body: bytes | None = None, headers: dict[str, str] | None = None,
         timeout: float = 120.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@dataclass
class MasterProcess:
    """A ``mesos-master`` on fixed ports, restartable on the same work dir."""

    work_dir: str
    port: int
    link_port: int
    zk: str | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> float:
        """Start it; returns when it answers HTTP (and leads, with ZooKeeper)."""
        argv = [os.path.join(VENV_BIN, "mesos-master"), f"--port={self.port}",
                f"--agent_port={self.link_port}", f"--work_dir={self.work_dir}", "--quiet"]
        if self.zk:
            argv += [f"--zk={self.zk}", "--quorum=1"]
        log = open(os.path.join(self.work_dir, "master.log"), "ab")  # noqa: SIM115
        self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                status, _ = http(self.url + "/health", timeout=5)
                if status == 200:
                    return time.time()
            time.sleep(0.05)
        raise RuntimeError(f"the master did not come up; see {self.work_dir}/master.log")

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def psutil(self) -> psutil.Process:
        assert self.process is not None
        return psutil.Process(self.process.pid)


class EmulatorProcess:
    def __init__(self, master: str, agents: int) -> None:
        self.agents = agents
        self.process = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "bench", "agent_emulator.py"),
             f"--master={master}", f"--agents={agents}"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(self, **command: Any) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        answer: dict[str, Any] = json.loads(self.process.stdout.readline())
        return answer

    def wait_registered(self, registrations: int, timeout: float) -> float:
        """Until all agents are connected and ``registrations`` happened; time.time() then."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.ask(cmd="status")
            if status["connected"] >= self.agents and status.get("registrations", 0) >= \
                    registrations:
                return float(status["last_registered"])
            time.sleep(0.1)
        raise RuntimeError(f"agents did not all register in {timeout}s: {status}")

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            assert self.process.stdin is not None
            self.process.stdin.write('{"cmd": "quit"}\n')
            self.process.stdin.close()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def scratch() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="master-scale-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def timed_get(url: str, body: bytes | None = None, headers: dict[str, str] | None = None,
              runs: int = 3) -> tuple[float, int, int]:
    """Median seconds, HTTP status and size of the response, over ``runs`` requests."""
    samples, size, status = [], 0, 0
    for _ in range(runs):
        started = time.perf_counter()
        status, data = http(url, body, headers)
        samples.append(time.perf_counter() - started)
        size = len(data)
    return sorted(samples)[len(samples) // 2], status, size


def get_state(master: MasterProcess, media: str) -> tuple[float, int, int]:
    call = master_pb2.Call(type=master_pb2.Call.GET_STATE)
    body = json.dumps({"type": "GET_STATE"}).encode() if media == "application/json" \
        else call.SerializeToString()
    return timed_get(master.url + "/api/v1", body,
                     {"Content-Type": media, "Accept": media})


# Frameworks -------------------------------------------------------------------------------------
async def frameworks_phase(master: MasterProcess, count: int, offers_s: float,
                           calls_s: float, agent_ids: list[str]) -> dict[str, float]:
    """Subscribe ``count`` frameworks; measure offers/s (declining all), then calls/s."""
    offered = 0
    held: dict[int, list[str]] = {n: [] for n in range(count)}
    phase = {"name": "offers"}
    calls = {"DECLINE": 0, "ACCEPT": 0, "ACKNOWLEDGE": 0, "failed": 0}
    clients: list[SchedulerClient] = []
    subscribed = asyncio.Event()
    ready = [0]

    async def listen(n: int, client: SchedulerClient) -> None:
        nonlocal offered
        async for event in client.events():
            if event.type == scheduler_pb2.Event.SUBSCRIBED:
                ready[0] += 1
                if ready[0] == count:
                    subscribed.set()
            elif event.type == scheduler_pb2.Event.OFFERS:
                ids = [o.id.value for o in event.offers.offers]
                offered += len(ids)
                if phase["name"] == "offers":
                    with contextlib.suppress(Exception):
                        await client.decline(ids, refuse_seconds=0)
                else:
                    held[n].extend(ids)

    async def caller(n: int, client: SchedulerClient, until: float) -> None:
        turn = 0
        while time.monotonic() < until:
            turn += 1
            try:
                if turn % 3 == 0:
                    status = mesos_pb2.TaskStatus(uuid=uuid.uuid4().bytes)
                    status.task_id.value = f"emulated-{n}-0"
                    status.agent_id.value = random.choice(agent_ids)
                    await client.acknowledge(status)
                    calls["ACKNOWLEDGE"] += 1
                elif turn % 3 == 1:
                    offers, held[n] = held[n], []
                    await client.decline(offers, refuse_seconds=0)
                    calls["DECLINE"] += 1
                else:
                    offers, held[n] = held[n], []
                    await client.accept(offers, [], refuse_seconds=0)
                    calls["ACCEPT"] += 1
            except Exception:  # counted: a refused call is a result, not a crash
                calls["failed"] += 1

    listeners = []
    try:
        for n in range(count):
            info = mesos_pb2.FrameworkInfo(name=f"scale-{n}", user="bench", role="*")
            client = SchedulerClient(master.url, info)
            await client.__aenter__()
            clients.append(client)
            listeners.append(asyncio.create_task(listen(n, client)))
        await asyncio.wait_for(subscribed.wait(), 120)
        before = offered
        started = time.monotonic()
        await asyncio.sleep(offers_s)
        offers_per_s = (offered - before) / (time.monotonic() - started)
        phase["name"] = "calls"
        progress(f"calls phase ({calls_s:g} s), master pid {master.psutil().pid}")
        # Whose CPU the phase took: the master's, and this process's (its 100 clients, which
        # share the two cores with it and may be what limits the rate).
        cpu = [(process, sum(process.cpu_times()[:2]))
               for process in (master.psutil(), psutil.Process())]
        started = time.monotonic()
        until = started + calls_s
        await asyncio.gather(*(caller(n, c, until) for n, c in enumerate(clients)))
        elapsed = time.monotonic() - started
        busy = [(sum(process.cpu_times()[:2]) - before) / elapsed * 100
                for process, before in cpu]
        done = calls["DECLINE"] + calls["ACCEPT"] + calls["ACKNOWLEDGE"]
        return {"offers_per_s": offers_per_s, "calls_per_s": done / elapsed,
                "calls_failed": float(calls["failed"]),
                "calls_master_cpu_percent": busy[0], "calls_clients_cpu_percent": busy[1]}
    finally:
        for task in listeners:
            task.cancel()
        for client in clients:
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)


# One size ---------------------------------------------------------------------------------------
def progress(what: str) -> None:
    """A phase starting, on stderr: the figures stay on stdout, and a profiler can be attached
    to the master for one phase (the calls phase names the master's pid)."""
    print(f"{time.strftime('%H:%M:%S')} {what}", file=sys.stderr, flush=True)


def failover(master: MasterProcess, emulator: EmulatorProcess, registrations: int) -> dict[str,
                                                                                         float]:
    killed = time.time()
    master.kill()
    up = master.start()
    done = emulator.wait_registered(registrations, timeout=600)
    return {"from_kill_s": done - killed, "from_up_s": done - up}


def run_size(agents: int, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"agents": agents, "tasks": agents * args.tasks}
    with scratch() as work:
        master = MasterProcess(work, free_port(), free_port())
        master.start()
        rss_empty = master.psutil().memory_info().rss
        started = time.time()
        emulator = EmulatorProcess(f"127.0.0.1:{master.port}", agents)
        try:
            out["register_s"] = emulator.wait_registered(agents, timeout=600) - started
            rss_agents = master.psutil().memory_info().rss
            out["rss_per_agent_kib"] = (rss_agents - rss_empty) / agents / 1024
            emulator.ask(cmd="seed", tasks=args.tasks, frameworks=10)
            progress(f"{agents} agents registered; failover with {agents * args.tasks} tasks")
            result = failover(master, emulator, 2 * agents)
            out["failover_s"] = result["from_kill_s"]
            out["failover_from_up_s"] = result["from_up_s"]
            time.sleep(2)  # let the last registrations settle
            rss = master.psutil().memory_info().rss
            out["rss_mib"] = rss / 2**20
            out["rss_per_task_kib"] = (rss - rss_agents) / max(1, agents * args.tasks) / 1024
            latency, status, size = timed_get(master.url + "/master/state")
            out.update(state_s=latency, state_status=status, state_mib=size / 2**20)
            for media, key in (("application/json", "get_state_json"),
                               ("application/x-protobuf", "get_state_pb")):
                latency, status, size = get_state(master, media)
                out.update({f"{key}_s": latency, f"{key}_status": status,
                            f"{key}_mib": size / 2**20})
            progress("state measured; idle CPU")
            process = master.psutil()
            process.cpu_percent()
            time.sleep(args.idle)
            out["idle_cpu_percent"] = process.cpu_percent()
            status_body = http(master.url + "/master/slaves", timeout=120)[1]
            agent_ids = [a["id"] for a in json.loads(status_body)["slaves"]][:1000]
            out.update(asyncio.run(frameworks_phase(master, args.frameworks, args.offers_window,
                                                    args.calls_window, agent_ids)))
        finally:
            emulator.stop()
            master.kill()
    if args.zk:
        out["failover_zk_s"] = zk_failover(agents, args)
    return out


def zk_failover(agents: int, args: argparse.Namespace) -> float | None:
    from tests.harness.zookeeper import zookeeper_server  # only with --zk

    with scratch() as work, zookeeper_server(work) as zk:
        url = f"zk://{zk}/mesos"
        master = MasterProcess(work, free_port(), free_port(), zk=url)
        master.start()
        emulator = EmulatorProcess(url, agents)
        try:
            emulator.wait_registered(agents, timeout=600)
            emulator.ask(cmd="seed", tasks=args.tasks, frameworks=10)
            return failover(master, emulator, 2 * agents)["from_kill_s"]
        finally:
            emulator.stop()
            master.kill()


def line(figures: dict[str, Any]) -> str:
    def f(key: str, fmt: str = "{:.2f}") -> str:
        value = figures.get(key)
        return "-" if value is None else fmt.format(value)

    return (f"{figures['agents']:>6} agents {figures['tasks']:>7} tasks | register "
            f"{f('register_s')} s | failover {f('failover_s')} s (zk {f('failover_zk_s')}) | "
            f"state {f('state_s')} s {f('state_mib', '{:.1f}')} MiB | GET_STATE json "
            f"{f('get_state_json_s')} s pb {f('get_state_pb_s')} s | RSS {f('rss_mib', '{:.0f}')}"
            f" MiB ({f('rss_per_agent_kib', '{:.1f}')} KiB/agent, "
            f"{f('rss_per_task_kib', '{:.1f}')} KiB/task) | idle CPU "
            f"{f('idle_cpu_percent', '{:.1f}')}% | offers/s {f('offers_per_s', '{:.0f}')} | "
            f"calls/s {f('calls_per_s', '{:.0f}')} (CPU: master "
            f"{f('calls_master_cpu_percent', '{:.0f}')}%, clients "
            f"{f('calls_clients_cpu_percent', '{:.0f}')}%)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", default="1000,5000,10000", help="agents, comma separated")
    parser.add_argument("--tasks", type=int, default=10, help="tasks per agent")
    parser.add_argument("--frameworks", type=int, default=100)
    parser.add_argument("--idle", type=float, default=30.0,
                        help="seconds of idle CPU measurement (pings every 15 s)")
    parser.add_argument("--offers-window", type=float, default=10.0)
    parser.add_argument("--calls-window", type=float, default=10.0)
    parser.add_argument("--zk", action="store_true", help="also fail over with ZooKeeper")
    parser.add_argument("--json", metavar="PATH", help="also write the figures there")
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    results = []
    print(f"targets at 10,000 agents: {json.dumps(TARGETS)}", flush=True)
    for size in (int(s) for s in args.sizes.split(",") if s):
        figures = run_size(size, args)
        results.append(figures)
        print(line(figures), flush=True)
    summary = json.dumps({"sizes": results, "targets": TARGETS})
    print(summary)
    if args.json:
        with open(args.json, "w") as handle:
            handle.write(summary + "\n")


if __name__ == "__main__":
    main()
