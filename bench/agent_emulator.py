"""Thousands of emulated agents in one process, on the real master-agent link.

Each emulated agent speaks ``agent_runtime/proto/internal.proto`` over gRPC to a real
``mesos-master`` exactly as ``agent_runtime.agent.master_link`` does: it asks the master's HTTP
server where the link listens, registers (with its id and its tasks when it has been registered
before), answers every ping, reports a launched task RUNNING and a killed one KILLED with status
updates the master acknowledges, and after any break re-registers with a randomised doubling
backoff (``--registration_backoff_factor``, as Mesos). No executor runs: a task is a record whose
state changes when the master launches or kills it, or when the driver says so.

What is shared to make 10,000 agents fit in one process (and is not in a real agent): one HTTP
lookup of the link address per second for all agents, and the gRPC streams of ``--per-channel``
agents multiplexed over one HTTP/2 connection.

Driven over stdin/stdout by ``bench/master_scale.py``, one JSON object a line each way::

    {"cmd": "status"}                   -> {"connected": n, "registrations": n, "pings": n, ...}
    {"cmd": "seed", "tasks": 10}        -> each agent now runs that many tasks (RUNNING) of
                                           "--frameworks" frameworks, reported when it next
                                           re-registers (after a master failover)
    {"cmd": "finish", "fraction": 0.1}  -> that share of running tasks goes TASK_FINISHED
    {"cmd": "quit"}

Run alone: ``.venv/bin/python bench/agent_emulator.py --master 127.0.0.1:5050 --agents 1000``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import aiohttp  # noqa: E402
import grpc  # noqa: E402

from agent_runtime.detector import MasterDetector  # noqa: E402
from agent_runtime.proto import internal_pb2, internal_pb2_grpc, mesos_pb2  # noqa: E402

MAX_BACKOFF = 60.0
Message = internal_pb2.MasterMessage


def _scalar(name: str, value: float) -> mesos_pb2.Resource:
    resource = mesos_pb2.Resource(name=name, type=mesos_pb2.Value.SCALAR)
    resource.scalar.value = value
    return resource


def agent_info(index: int) -> mesos_pb2.AgentInfo:
    info = mesos_pb2.AgentInfo(hostname=f"emulated-{index}.bench", port=5051)
    info.resources.extend([_scalar("cpus", 32), _scalar("mem", 65536), _scalar("disk", 1 << 20)])
    ports = mesos_pb2.Resource(name="ports", type=mesos_pb2.Value.RANGES)
    ports.ranges.range.add(begin=31000, end=32000)
    info.resources.append(ports)
    return info


def task_resources(role: str = "*") -> list[mesos_pb2.Resource]:
    out = [_scalar("cpus", 0.1), _scalar("mem", 32)]
    for resource in out:
        resource.allocation_info.role = role
    return out


@dataclass
class Stats:
    """What the driver reads: counters, and when the last agent (re-)registered."""

    connected: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    last_registered: float = 0.0


class LinkAddress:
    """Where the master's gRPC link listens, looked up for all agents at most once a second."""

    def __init__(self, detector: MasterDetector) -> None:
        self.detector = detector
        self._cached: tuple[float, str] | None = None
        self._pending: asyncio.Future[str] | None = None
        self._session: aiohttp.ClientSession | None = None

    async def get(self) -> str:
        now = time.monotonic()
        if self._cached is not None and now - self._cached[0] < 1.0:
            return self._cached[1]
        if self._pending is None:
            self._pending = asyncio.get_running_loop().create_task(self._lookup())
        pending = self._pending
        try:
            return await asyncio.shield(pending)
        finally:
            if pending.done() and self._pending is pending:
                self._pending = None

    async def _lookup(self) -> str:
        master = await self.detector.leader()
        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.get(f"http://{master}/master/agent_link",
                                     timeout=aiohttp.ClientTimeout(total=5)) as response:
            response.raise_for_status()
            data = await response.json()
        address = f"{master.rpartition(':')[0]}:{data['port']}"
        self._cached = (time.monotonic(), address)
        return address

    async def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()  # a lookup under way when the agents stop is not an error
        if self._session is not None:
            await self._session.close()
        await asyncio.to_thread(self.detector.close)


class Channels:
    """One gRPC channel per ``per_channel`` agents, per master link address."""

    def __init__(self, per_channel: int) -> None:
        self.per_channel = per_channel
        self._by_address: dict[str, dict[int, grpc.aio.Channel]] = {}

    async def stub(self, address: str, index: int) -> internal_pb2_grpc.AgentLinkAsyncStub:
        channels = self._by_address.setdefault(address, {})
        slot = index // self.per_channel
        if slot not in channels:
            channels[slot] = grpc.aio.insecure_channel(address)
        channel = channels[slot]
        # Streams started on a channel still connecting can be cancelled under load: wait.
        await channel.channel_ready()
        return internal_pb2_grpc.AgentLinkStub(channel)

    async def close(self) -> None:
        for channels in self._by_address.values():
            for channel in channels.values():
                await channel.close()


class EmulatedAgent:
    def __init__(self, index: int, emulator: Emulator) -> None:
        self.index = index
        self.emulator = emulator
        self.info = agent_info(index)
        self.agent_id = ""
        # Tasks by framework id, as the agent reports them when it re-registers.
        self.tasks: dict[str, dict[str, mesos_pb2.Task]] = {}
        self.frameworks: dict[str, mesos_pb2.FrameworkInfo] = {}
        self.call: Any = None
        self.lock = asyncio.Lock()
        self.refused: str | None = None
        self.stage = ""  # what the agent waits for, named in the errors the driver sees

    def registration(self) -> internal_pb2.RegisterAgent:
        register = internal_pb2.RegisterAgent(version="1.11.0",
                                              pid=f"slave(1)@127.0.0.1:{5051}")
        register.agent_info.CopyFrom(self.info)
        if self.agent_id:
            register.agent_info.id.value = self.agent_id
        register.capabilities.add(type=mesos_pb2.AgentInfo.Capability.MULTI_ROLE)
        for framework_id, tasks in self.tasks.items():
            if not tasks:
                continue
            executor = register.executors.add()
            executor.framework_info.CopyFrom(self.frameworks[framework_id])
            executor.tasks.extend(tasks.values())
        return register

    async def run(self) -> None:
        attempt = 0
        while self.refused is None:
            registered = False
            try:
                registered = await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any break: re-register, as a real agent
                self.emulator.stats.counts[f"error:{self.stage}:{type(exc).__name__}"] += 1
                self.emulator.last_error = str(exc)[:300]
            if registered or self.stage == "lookup":
                attempt = 0  # as the agent's master link: a master not found grows no backoff
            factor = self.emulator.backoff_factor
            delay = random.uniform(0, min(factor * 2 ** attempt, MAX_BACKOFF))
            attempt += 1
            await asyncio.sleep(max(delay, 0.05))

    async def _session(self) -> bool:
        emulator = self.emulator
        self.stage = "lookup"
        address = await emulator.link.get()
        call = (await emulator.channels.stub(address, self.index)).Connect()
        self.stage = "register"
        await call.write(internal_pb2.AgentMessage(register=self.registration()))
        self.stage = "registered"
        first = await call.read()
        self.stage = "session"
        if not isinstance(first, Message) or first.WhichOneof("kind") != "registered":
            if isinstance(first, Message) and first.error:
                self.refused = first.error
            call.cancel()
            return False
        self.agent_id = first.registered.agent_id.value
        self.call = call
        stats = emulator.stats
        stats.connected += 1
        stats.counts["registrations"] += 1
        stats.last_registered = time.time()
        try:
            while True:
                message = await call.read()
                if not isinstance(message, Message):
                    return True
                await self._handle(message)
        finally:
            self.call = None
            stats.connected -= 1
            call.cancel()

    async def _write(self, message: internal_pb2.AgentMessage) -> None:
        call = self.call
        if call is None:
            return
        async with self.lock:
            await call.write(message)

    async def _handle(self, message: Message) -> None:
        kind = message.WhichOneof("kind")
        counts = self.emulator.stats.counts
        counts[kind or "unknown"] += 1
        if kind == "ping":
            await self._write(internal_pb2.AgentMessage(pong=message.ping))
        elif kind == "run_task":
            run = message.run_task
            framework_id = run.framework_info.id.value
            self.frameworks[framework_id] = run.framework_info
            task = mesos_pb2.Task(name=run.task.name, state=mesos_pb2.TASK_STAGING)
            task.task_id.CopyFrom(run.task.task_id)
            task.framework_id.value = framework_id
            task.agent_id.value = self.agent_id
            task.resources.extend(run.task.resources)
            self.tasks.setdefault(framework_id, {})[task.task_id.value] = task
            await self.update(framework_id, task, mesos_pb2.TASK_RUNNING)
        elif kind == "kill_task":
            kill = message.kill_task
            killed = self.tasks.get(kill.framework_id.value, {}).get(kill.task_id.value)
            if killed is not None:
                await self.update(kill.framework_id.value, killed, mesos_pb2.TASK_KILLED)
        elif kind == "shutdown_framework":
            self.tasks.pop(message.shutdown_framework.framework_id.value, None)

    async def update(self, framework_id: str, task: mesos_pb2.Task, state: int) -> None:
        """Move a task and tell the master (acknowledged updates are counted, not retried)."""
        task.state = state  # type: ignore[assignment]
        out = internal_pb2.AgentMessage()
        update = out.status_update
        update.framework_id.value = framework_id
        status = update.status
        status.task_id.CopyFrom(task.task_id)
        status.agent_id.value = self.agent_id
        status.state = state  # type: ignore[assignment]
        status.source = mesos_pb2.TaskStatus.SOURCE_EXECUTOR
        status.uuid = uuid.uuid4().bytes
        status.timestamp = time.time()
        update.latest_state = state  # type: ignore[assignment]
        del task.statuses[:]
        task.statuses.append(status)
        self.emulator.stats.counts["updates_sent"] += 1
        await self._write(out)

    def seed(self, count: int, frameworks: list[mesos_pb2.FrameworkInfo]) -> None:
        for n in range(count):
            framework = frameworks[(self.index + n) % len(frameworks)]
            framework_id = framework.id.value
            self.frameworks[framework_id] = framework
            task = mesos_pb2.Task(name=f"t{n}", state=mesos_pb2.TASK_RUNNING)
            task.task_id.value = f"emulated-{self.index}-{n}"
            task.framework_id.value = framework_id
            task.agent_id.value = self.agent_id
            task.resources.extend(task_resources())
            status = task.statuses.add(state=mesos_pb2.TASK_RUNNING, timestamp=time.time())
            status.task_id.CopyFrom(task.task_id)
            self.tasks.setdefault(framework_id, {})[task.task_id.value] = task


class Emulator:
    def __init__(self, master: str, agents: int, *, per_channel: int,
                 backoff_factor: float) -> None:
        self.link = LinkAddress(MasterDetector(master))
        self.channels = Channels(per_channel)
        self.backoff_factor = backoff_factor
        self.stats = Stats()
        self.last_error = ""
        self.agents = [EmulatedAgent(i, self) for i in range(agents)]
        self._runs: list[asyncio.Task[None]] = []

    def start(self, ramp: float) -> None:
        loop = asyncio.get_running_loop()
        for agent in self.agents:
            # Agents come up over `ramp` seconds, as a real cluster's do, not in one instant.
            delay = random.uniform(0, ramp) if ramp > 0 else 0.0
            self._runs.append(loop.create_task(self._start(agent, delay)))

    async def _start(self, agent: EmulatedAgent, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        await agent.run()

    def seed(self, tasks: int, frameworks: int) -> None:
        infos = []
        for n in range(frameworks):
            info = mesos_pb2.FrameworkInfo(name=f"emulated-{n}", user="bench")
            info.id.value = f"emulated-framework-{n}"
            info.capabilities.add(type=mesos_pb2.FrameworkInfo.Capability.PARTITION_AWARE)
            infos.append(info)
        for agent in self.agents:
            agent.seed(tasks, infos)

    async def finish(self, fraction: float) -> int:
        changed = 0
        for agent in self.agents:
            for framework_id, tasks in agent.tasks.items():
                for task in list(tasks.values()):
                    if task.state == mesos_pb2.TASK_RUNNING and random.random() < fraction:
                        await agent.update(framework_id, task, mesos_pb2.TASK_FINISHED)
                        changed += 1
        return changed

    def status(self) -> dict[str, Any]:
        stats = self.stats
        return {"connected": stats.connected, "agents": len(self.agents),
                "last_registered": stats.last_registered, "last_error": self.last_error,
                "refused": sum(1 for a in self.agents if a.refused is not None),
                "tasks": sum(len(t) for a in self.agents for t in a.tasks.values()),
                **stats.counts}

    async def stop(self) -> None:
        for run in self._runs:
            run.cancel()
        for run in self._runs:
            with contextlib.suppress(asyncio.CancelledError):
                await run
        await self.channels.close()
        await self.link.close()


async def serve(args: argparse.Namespace) -> None:
    """Answer the driver's commands on stdin until it says quit (or closes stdin)."""
    emulator = Emulator(args.master, args.agents, per_channel=args.per_channel,
                        backoff_factor=args.backoff_factor)
    emulator.start(args.ramp)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while line := await reader.readline():
            command = json.loads(line)
            answer: dict[str, Any] = {"ok": True}
            match command.get("cmd"):
                case "status":
                    answer = emulator.status()
                case "seed":
                    emulator.seed(int(command["tasks"]), int(command.get("frameworks", 10)))
                case "finish":
                    answer["changed"] = await emulator.finish(float(command["fraction"]))
                case "quit":
                    break
                case other:
                    answer = {"ok": False, "error": f"unknown command {other!r}"}
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
    finally:
        await emulator.stop()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--master", required=True, help="host:port or zk://host:port/path")
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--per-channel", type=int, default=100,
                        help="agents whose streams share one HTTP/2 connection")
    parser.add_argument("--backoff-factor", type=float, default=1.0,
                        help="--registration_backoff_factor in seconds (Mesos: 1secs)")
    parser.add_argument("--ramp", type=float, default=0.0,
                        help="spread the agents' first registration over this many seconds")
    return parser.parse_args(argv)


def main() -> None:
    asyncio.run(serve(parse_args()))

if __name__ == "__main__":
    main()
