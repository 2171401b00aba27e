"""What confinement costs a launch: capabilities + seccomp + no_new_privs + IPC and UTS
namespaces, against the same containers without them, side by side in one run.

Two real clusters (master + agent each, ``tests/cluster.py``) on this machine: agent A with
``--isolation=BASE``, agent B with ``BASE`` plus ``CONFINEMENT``; launches alternate A, B, A, B
(each after a short quiet, never overlapping), so both see the same machine. Timed as
``bench/container_launch.py`` times it: the agent's own log, from the task reaching it to its
TASK_RUNNING. ``--image busybox`` runs the tasks from that image (built offline, as the tests
do) instead of the host's filesystem.

Run as root: ``.venv/bin/python bench/confinement.py [--runs 40] [--image busybox]``; prints the
p50/p99 of each side and the ratio (target: confined at most 1.10x).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Sequence
from unittest import mock

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [path for path in (os.path.dirname(BENCH), BENCH) if path not in sys.path]

import container_launch  # noqa: E402
import launch  # noqa: E402

from agent_runtime.proto import mesos_pb2  # noqa: E402
from agent_runtime.scheduler.client import SchedulerClient  # noqa: E402
from tests.harness.cluster import Cluster  # noqa: E402

BASE = "cgroups/cpu,cgroups/mem,filesystem/linux,namespaces/pid"
CONFINEMENT = "linux/capabilities,linux/seccomp,linux/nnp,namespaces/ipc,namespaces/uts"
MAX_RATIO = 1.10


class Side:
    def __init__(self, name: str, isolation: str, work_dir: str, args: argparse.Namespace
                 ) -> None:
        self.name = name
        self.root = f"bench-conf-{name}-{uuid.uuid4().hex[:6]}"
        flags = [f"--isolation={isolation}", f"--cgroups_root={self.root}",
                 "--resources=cpus:4;mem:4096;disk:4096"]
        if args.image:
            flags[0] += ",docker/runtime"
            flags += ["--image_providers=docker", f"--docker_registry={args.images}",
                      f"--docker_store_dir={work_dir}/store"]
        self.work_dir = work_dir
        self.cluster = Cluster(work_dir, agent_flags=flags)
        self.ids: list[str] = []

    def start(self) -> None:
        self.cluster.start_master()
        with mock.patch.dict(os.environ, {"GLOG_v": "1"}):  # its debug lines time launches
            self.cluster.start_agent(0)
        self.cluster.wait_agents(1)

    def agent_ms(self) -> list[float]:
        times = container_launch.agent_log_times(os.path.join(self.work_dir, "agent0.log"))
        return [(times[t][1] - times[t][0]) * 1000 for t in self.ids if t in times]

    def stop(self) -> None:
        self.cluster.stop()
        container_launch.remove_root(self.root)


class ImageScheduler(launch.BenchScheduler):
    """The same launches, each task run from ``image``."""

    image = "busybox"

    def task_info(self, agent_id: str, prefix: str) -> mesos_pb2.TaskInfo:
        task = super().task_info(agent_id, prefix)
        task.container.type = mesos_pb2.ContainerInfo.MESOS
        task.container.mesos.image.type = mesos_pb2.Image.DOCKER
        task.container.mesos.image.docker.name = self.image
        return task


async def drive(sides: list[Side], args: argparse.Namespace) -> None:
    info = mesos_pb2.FrameworkInfo(user=getpass.getuser(), name="bench-confinement")
    async with contextlib.AsyncExitStack() as stack:
        schedulers = []
        for side in sides:
            client = await stack.enter_async_context(SchedulerClient(side.cluster.master, info))
            kind = ImageScheduler if args.image else launch.BenchScheduler
            scheduler = kind(client, args.cpus, args.mem, args.command)
            if isinstance(scheduler, ImageScheduler):
                scheduler.image = args.image
            pump = asyncio.get_running_loop().create_task(scheduler.pump())
            stack.callback(pump.cancel)
            await scheduler.wait_subscribed(args.timeout)
            schedulers.append(scheduler)
        for index in range(args.warmup + args.runs):
            for side, scheduler in zip(sides, schedulers, strict=True):
                await container_launch.settle()
                offers = await scheduler.take_offers(args.timeout)
                (task_id,) = await scheduler.launch(offers, 1, f"{side.name}{index}")
                times = scheduler.tasks[task_id]
                await scheduler.wait_until(times.is_done, args.timeout, f"task {task_id}")
                if times.terminal != launch.FINISHED:
                    raise RuntimeError(f"{side.name}: task {task_id} ended "
                                       f"{launch.state_name(times.terminal)} ({times.message})")
                await container_launch.wait_containers_gone(side.root, args.timeout)
                if index >= args.warmup:
                    side.ids.append(task_id)
        for scheduler in schedulers:
            await scheduler.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--command", default="sleep 0")
    parser.add_argument("--cpus", type=float, default=0.01)
    parser.add_argument("--mem", type=int, default=32)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--image", help="run the tasks from this image (e.g. busybox)")
    parser.add_argument("--confine", default=CONFINEMENT,
                        help=f"isolators the confined side adds (default {CONFINEMENT})")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root (cgroups, namespaces)", file=sys.stderr)
        return 2
    work = tempfile.mkdtemp(prefix="bench-confinement-")
    if args.image:
        from tests.harness.registry import offline_images

        args.images = offline_images(os.path.join(work, "images"))
    sides = [Side("plain", BASE, os.path.join(work, "plain"), args),
             Side("confined", f"{BASE},{args.confine}", os.path.join(work, "confined"), args)]
    try:
        for side in sides:
            os.makedirs(side.work_dir)
            side.start()
        asyncio.run(drive(sides, args))
        plain, confined = (side.agent_ms() for side in sides)
        p50, p99 = launch.p50, launch.percentile
        ratio = p50(confined) / p50(plain)
        print(f"confinement benchmark: {args.runs} launches a side, alternating, "
              f"{'image ' + args.image if args.image else 'no image'}, {os.cpu_count()} CPUs")
        print(f"  --isolation={BASE}")
        print(f"  confined adds {args.confine}")
        print(f"{'agent LAUNCH->RUNNING ms':<28}{'p50':>8}{'p99':>8}")
        print(f"{'  plain':<28}{p50(plain):>8.1f}{p99(plain, 99):>8.1f}")
        print(f"{'  confined':<28}{p50(confined):>8.1f}{p99(confined, 99):>8.1f}")
        verdict = "PASS" if ratio <= MAX_RATIO else "FAIL"
        print(f"confined / plain p50: {ratio:.2f}x (target <= {MAX_RATIO:.2f}x) {verdict}")
        return 0
    except Exception:
        for side in sides:
            print(side.cluster.logs(), file=sys.stderr)
        raise
    finally:
        for side in sides:
            side.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
