"""Docker task launch latency through the scheduler API, against the Docker SDK called directly.

Starts a real master and an agent with ``--containerizers=docker`` (``tests/cluster.py``) and a
busybox image loaded from a ``docker save`` archive (``tests/dockerd.py`` builds it offline when
``--images`` is not given). In one run, interleaved (ABAB) so both see the same engine state:

(a) direct: ``create_container`` + ``start`` through the SDK's low-level client, of the same
    container our agent creates (image, command, environment, labels, cpu shares, memory, host
    networking, the sandbox bind mount), timed until ``start`` returns; then waited for and
    removed outside the timing;
(b) ours: one DOCKER task per ACCEPT, timed from just before the ACCEPT POST to receipt of the
    task's TASK_RUNNING update at the scheduler. Each launch waits until the task is finished
    and its container removed, so launches never overlap.

It prints p50 and p99 of both, the ratio of the p50s against the issue's target (1.1x), and the
stages of our path from the executor's status timestamps (every process shares the host clock).

Run: ``.venv/bin/python bench/docker_launch.py [--runs 30] [--warmup 3] [--json out.json]``
(needs a Docker engine: ``bash scripts/docker.sh``).
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
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import docker  # noqa: E402

from agent_runtime.containerizer import docker_options  # noqa: E402
from agent_runtime.proto import mesos_pb2, scheduler_pb2  # noqa: E402
from agent_runtime.scheduler.client import SchedulerClient  # noqa: E402
from agent_runtime.task_states import TERMINAL_STATES  # noqa: E402
from tests.harness import dockerd  # noqa: E402
from tests.harness.cluster import Cluster  # noqa: E402

Event = scheduler_pb2.Event
TARGET_RATIO = 1.1
STARTING, RUNNING = mesos_pb2.TASK_STARTING, mesos_pb2.TASK_RUNNING


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (p99 of fewer than 100 samples is the maximum)."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def task_info(agent_id: str, task_id: str, image: str, command: str) -> mesos_pb2.TaskInfo:
    task = mesos_pb2.TaskInfo(name=task_id)
    task.task_id.value = task_id
    task.agent_id.value = agent_id
    task.command.value = command
    for name, value in (("cpus", 0.1), ("mem", 64.0)):
        resource = task.resources.add(name=name, type=mesos_pb2.Value.SCALAR)
        resource.scalar.value = value
    task.container.type = mesos_pb2.ContainerInfo.DOCKER
    task.container.docker.image = image
    return task


# Baseline: the SDK, directly -------------------------------------------------------------------
def direct_launch(client: docker.APIClient, task: mesos_pb2.TaskInfo, sandbox: str) -> float:
    """Seconds for create + start of the container our agent would make for ``task``."""
    container_id = str(uuid.uuid4())
    environment = {  # the shape of an executor environment (see Agent.executor_env)
        "MESOS_FRAMEWORK_ID": "bench", "MESOS_EXECUTOR_ID": task.task_id.value,
        "MESOS_DIRECTORY": sandbox, "MESOS_SANDBOX": sandbox, "MESOS_SLAVE_ID": "bench",
        "MESOS_AGENT_ENDPOINT": "127.0.0.1:5051", "MESOS_CONTAINER_ID": container_id,
        "MESOS_CHECKPOINT": "0", "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": "5secs",
    }
    spec = docker_options.build(docker_options.TaskContainer(
        task=task, container_id=container_id, agent_id="bench", framework_id="bench",
        executor_id=task.task_id.value, sandbox=sandbox, sandbox_directory="/mnt/mesos/sandbox",
        environment=environment))
    started = time.perf_counter()
    host_config = client.create_host_config(
        network_mode=spec.network_mode, cpu_shares=spec.cpu_shares, mem_limit=spec.memory_bytes,
        memswap_limit=spec.memory_bytes, binds=list(spec.binds))
    created = client.create_container(
        spec.image, command=spec.command, entrypoint=spec.entrypoint,
        environment=dict(spec.environment), labels=dict(spec.labels), name=spec.name,
        host_config=host_config, use_config_proxy=False)
    client.start(created["Id"])
    elapsed = time.perf_counter() - started
    client.wait(created["Id"])
    client.remove_container(created["Id"], force=True)
    return elapsed


# Ours: through the scheduler API ---------------------------------------------------------------
class Scheduler:
    def __init__(self, client: SchedulerClient) -> None:
        self.client = client
        self.offers: list[mesos_pb2.Offer] = []
        self.received: dict[str, dict[int, float]] = {}  # task -> state -> receipt time
        self.stamped: dict[str, dict[int, float]] = {}  # task -> state -> executor's stamp
        self.messages: dict[str, str] = {}
        self.changed = asyncio.Event()

    async def pump(self) -> None:
        async for event in self.client.events():
            now = time.time()
            if event.type == Event.OFFERS:
                self.offers.extend(event.offers.offers)
            elif event.type == Event.UPDATE:
                status = event.update.status
                task_id = status.task_id.value
                self.received.setdefault(task_id, {}).setdefault(status.state, now)
                self.stamped.setdefault(task_id, {}).setdefault(status.state, status.timestamp)
                self.messages[task_id] = status.message
                if status.uuid:
                    asyncio.get_running_loop().create_task(self.client.acknowledge(status))
            self.changed.set()

    async def until(self, check: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"timed out waiting for {what}")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)

    async def launch(self, task: mesos_pb2.TaskInfo) -> float:
        """ACCEPT the task; returns seconds to TASK_RUNNING, after waiting for its end."""
        await self.until(lambda: self.offers, 30, "an offer")
        offers, self.offers = self.offers, []
        task.agent_id.CopyFrom(offers[0].agent_id)
        task_id = task.task_id.value
        sent = time.time()
        await self.client.accept([o.id.value for o in offers], [task], refuse_seconds=0)
        states = self.received.setdefault(task_id, {})
        await self.until(lambda: TERMINAL_STATES & states.keys(), 60, f"task {task_id} to end")
        if RUNNING not in states:
            raise RuntimeError(f"task {task_id} did not run: {self.messages.get(task_id)}")
        return states[RUNNING] - sent


def wait_removed(client: docker.APIClient, task_id: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while client.containers(all=True, filters={"label": f"mesos.task_id={task_id}"}):
        if time.monotonic() > deadline:
            raise TimeoutError(f"container of {task_id} was not removed")
        time.sleep(0.01)


async def drive(cluster: Cluster, client: docker.APIClient, args: argparse.Namespace,
                scratch: str) -> dict[str, Any]:
    direct_ms: list[float] = []
    ours_ms: list[float] = []
    stages: dict[str, list[float]] = {}
    sandbox = os.path.join(scratch, "direct-sandbox")
    os.makedirs(sandbox, exist_ok=True)
    info = mesos_pb2.FrameworkInfo(user=getpass.getuser(), name="bench-docker-launch")
    async with SchedulerClient(cluster.master, info) as scheduler_client:
        sched = Scheduler(scheduler_client)
        pump = asyncio.get_running_loop().create_task(sched.pump())
        try:
            for index in range(args.warmup + args.runs):
                task = task_info("", f"bench-{index}", args.image, args.command)
                direct = await asyncio.to_thread(direct_launch, client, task, sandbox)  # A
                ours = await sched.launch(task)  # B
                await asyncio.to_thread(wait_removed, client, task.task_id.value)
                if index < args.warmup:
                    continue
                direct_ms.append(direct * 1000)
                ours_ms.append(ours * 1000)
                sent = sched.received[task.task_id.value][RUNNING] - ours
                stamps = sched.stamped[task.task_id.value]
                got = sched.received[task.task_id.value]
                for name, value in (
                    ("ACCEPT -> executor stamps STARTING", stamps[STARTING] - sent),
                    ("executor STARTING -> RUNNING", stamps[RUNNING] - stamps[STARTING]),
                    ("executor RUNNING -> scheduler has it", got[RUNNING] - stamps[RUNNING]),
                ):
                    stages.setdefault(name, []).append(value * 1000)
        finally:
            pump.cancel()
            with contextlib.suppress(BaseException):
                await pump
    ratio = statistics.median(ours_ms) / statistics.median(direct_ms)
    return {"runs": args.runs, "image": args.image, "command": args.command,
            "direct_ms": direct_ms, "ours_ms": ours_ms, "stages_ms": stages,
            "ratio_p50": ratio, "target_ratio": TARGET_RATIO}


def report(result: dict[str, Any]) -> None:
    direct, ours = result["direct_ms"], result["ours_ms"]
    print(f"Docker launch latency, {result['runs']} runs, image {result['image']!r}, "
          f"command {result['command']!r}")
    print(f"  {'':44} {'p50 ms':>8} {'p99 ms':>8}")
    print(f"  {'direct: SDK create + start':44} {percentile(direct, 50):8.1f} "
          f"{percentile(direct, 99):8.1f}")
    print(f"  {'ours: ACCEPT -> TASK_RUNNING at scheduler':44} {percentile(ours, 50):8.1f} "
          f"{percentile(ours, 99):8.1f}")
    for name, samples in result["stages_ms"].items():
        print(f"    {name:42} {percentile(samples, 50):8.1f} {percentile(samples, 99):8.1f}")
    verdict = "meets" if result["ratio_p50"] <= TARGET_RATIO else "MISSES"
    print(f"  ratio of p50s: {result['ratio_p50']:.3f}x ({verdict} the {TARGET_RATIO}x target)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--image", default="busybox")
    parser.add_argument("--command", default="true")
    parser.add_argument("--images", help="directory of docker save archives (default: built)")
    parser.add_argument("--socket", default=dockerd.SOCKET)
    parser.add_argument("--json", help="also write the samples here")
    args = parser.parse_args(argv)
    client = docker.APIClient(base_url=f"unix://{args.socket}", version="auto", timeout=120)
    images = args.images or dockerd.image_dir(client)
    scratch = tempfile.mkdtemp(prefix="bench-docker-")
    cluster = Cluster(scratch, agent_flags=[
        "--containerizers=docker", f"--docker_registry={images}",
        f"--docker_socket={args.socket}", "--resources=cpus:4;mem:4096;disk:4096"])
    try:
        cluster.start()
        result = asyncio.run(drive(cluster, client, args, scratch))
    finally:
        cluster.stop()
        client.close()
        shutil.rmtree(scratch, ignore_errors=True)
    report(result)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
