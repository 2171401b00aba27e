"""Run from the host against a Vagrant cluster (``test-cluster.sh`` does): wait until the master
has AGENTS agents, then launch across them and check each task.

- a command task on every agent (FINISHED, on the agent its offer named);
- redis as a Docker task (``--docker_image=redis``, the docker containerizer) on agent1, and a
  command task on the last agent that gets ``+PONG`` from it at agent1's address;
- busybox through the Mesos containerizer (cgroups, filesystem/linux) on the last agent.

It reaches the cluster only through the master's port published on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import urllib.request

from agent_runtime.proto import mesos_pb2
from agent_runtime.scheduler.client import SchedulerClient
from tests.harness.framework import TestFramework, command_task, framework_info, terminal

MASTER = f"127.0.0.1:{os.environ.get('MASTER_PORT', '5050')}"
AGENTS = int(os.environ.get("AGENTS", "2"))
PING = ("python3 -c \"import socket; s = socket.create_connection(('{ip}', 6379), 5); "
        "s.sendall(b'PING\\r\\n'); r = s.recv(64); print(r); assert r == b'+PONG\\r\\n'\"")


def wait_ready(timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            with urllib.request.urlopen(f"http://{MASTER}/master/slaves", timeout=2) as answer:
                slaves = json.loads(answer.read())["slaves"]
            if len([s for s in slaves if s["active"]]) >= AGENTS:
                return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{AGENTS} agents did not register with {MASTER} in {timeout:.0f}s")


async def finished(framework: TestFramework, task_id: str, what: str) -> None:
    status = await terminal(framework, task_id, timeout=180)
    if status.state != mesos_pb2.TASK_FINISHED:
        raise SystemExit(f"{what}: {mesos_pb2.TaskState.Name(status.state)} {status.message}")
    print(f"ok: {what}", flush=True)


async def check() -> None:
    async with SchedulerClient(MASTER, framework_info("vagrant-check")) as client:
        fw = TestFramework(client)
        await fw.start()
        offers: dict[str, mesos_pb2.Offer] = {}
        while len(offers) < AGENTS:
            for offer in await fw.offers(60):
                offers[offer.hostname] = offer
        names = sorted(offers)
        first, last = offers[names[0]], offers[names[-1]]
        for name in names[1:-1]:
            await client.decline([offers[name].id.value], refuse_seconds=0)

        redis = command_task(first, "", "redis", cpus=0.2, mem=128)
        redis.command.shell = False
        redis.command.ClearField("value")  # the image's Cmd: redis-server on every address
        redis.container.type = mesos_pb2.ContainerInfo.DOCKER
        redis.container.docker.image = "redis"
        redis.container.docker.network = mesos_pb2.ContainerInfo.DockerInfo.HOST
        on_first = command_task(first, f"test $(hostname) = {names[0]}", "cmd-first")
        await client.accept([first.id.value], [redis, on_first], refuse_seconds=0)
        await finished(fw, "cmd-first", f"command task on {names[0]}")
        await fw.update("redis", mesos_pb2.TASK_STARTING, timeout=300)  # acked: RUNNING follows
        await fw.update("redis", mesos_pb2.TASK_RUNNING, timeout=300)
        print(f"ok: redis (docker) running on {names[0]}", flush=True)

        ping = command_task(last, PING.format(ip=first.url.address.ip), "ping", mem=64)
        image = command_task(last, "test -f /bin/busybox", "busybox", mem=64)
        image.container.type = mesos_pb2.ContainerInfo.MESOS
        image.container.mesos.image.type = mesos_pb2.Image.DOCKER
        image.container.mesos.image.docker.name = "busybox"
        await client.accept([last.id.value], [ping, image], refuse_seconds=0)
        await finished(fw, "ping", f"{names[-1]} got +PONG from redis at {names[0]}")
        await finished(fw, "busybox", f"busybox image task (mesos containerizer) on {names[-1]}")
        await client.kill("redis")
        await terminal(fw, "redis")
        await fw.stop()


def main() -> None:
    ready = wait_ready(float(sys.argv[1]) if len(sys.argv) > 1 else 300)
    print(f"cluster ready ({AGENTS} agents registered) {ready:.1f}s after vagrant up returned",
          flush=True)
    asyncio.run(check())


if __name__ == "__main__":
    main()
