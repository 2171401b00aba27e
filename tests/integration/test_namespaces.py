"""``--isolation=...,filesystem/linux,namespaces/pid`` without an image, on this machine's real
cgroups and namespaces: the container's processes see only each other, a kill ends them all,
and the container's mounts stay inside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

from agent_runtime.proto import mesos_pb2
from agent_runtime.scheduler.client import SchedulerClient
from tests.harness.cgroups import cgroup_root, containers
from tests.harness.cluster import Cluster, running_cluster
from tests.harness.custom_executor import report_of, scheduler
from tests.harness.framework import (
    TestFramework,
    command_task,
    framework_info,
    launch_one,
    terminal,
)
from tests.harness.processes import pids_with
from tests.harness.wait import until

pytestmark = pytest.mark.cgroups
ISOLATION = "cgroups/cpu,cgroups/mem,filesystem/linux,namespaces/pid"


@pytest.fixture
def root() -> Iterator[str]:
    yield from cgroup_root()


@pytest.fixture
def cluster(tmp_path: Any, root: str) -> Iterator[Cluster]:
    flags = [f"--isolation={ISOLATION}", f"--cgroups_root={root}"]
    with running_cluster(str(tmp_path), agent_flags=flags) as running:
        yield running


def _sandbox(cluster: Cluster, task_id: str) -> str:
    for dirpath, _, filenames in os.walk(cluster.work_dir):
        if "stdout" in filenames and os.path.basename(os.path.dirname(os.path.dirname(
                dirpath))) == task_id:
            return dirpath
    raise AssertionError(f"no sandbox for {task_id} under {cluster.work_dir}")


async def test_a_task_sees_its_own_pid_namespace_and_proc(cluster: Cluster, root: str) -> None:
    command = ("echo $$ > pid; ls /proc | grep -c '^[0-9]' > procs; "
               "grep -c ' /proc proc ' /proc/self/mounts > proc_mounts")
    async with SchedulerClient(cluster.master, framework_info()) as client:
        framework, task_id = await launch_one(client, command, cpus=0.1, mem=64)
        status = await terminal(framework, task_id)
        assert status.state == mesos_pb2.TASK_FINISHED, status.message
        sandbox = _sandbox(cluster, task_id)

        def read(name: str) -> int:
            with open(os.path.join(sandbox, name)) as file:
                return int(file.read())

        # pid 1 is the executor; the task's shell comes right after it.
        assert 1 < read("pid") < 10
        assert read("procs") < 10  # the host has far more processes than the container
        await until(lambda: not containers(root))
        await framework.stop()
    # The container's /proc mount never reached the host's mount table.
    with open("/proc/self/mountinfo") as mounts:
        assert sum(" /proc " in line for line in mounts) == 1


async def test_a_kill_ends_every_process_of_the_namespace(cluster: Cluster, root: str) -> None:
    marker = f"ns-stray-{uuid.uuid4().hex[:8]}"
    # A daemonised grandchild in a session of its own, out of the task's process group.
    command = f"setsid sh -c 'exec -a {marker} sleep 300' & sleep 300"
    async with SchedulerClient(cluster.master, framework_info()) as client:
        framework, task_id = await launch_one(client, command, cpus=0.1, mem=64)
        await framework.update(task_id, mesos_pb2.TASK_STARTING)
        await framework.update(task_id, mesos_pb2.TASK_RUNNING)
        await until(lambda: bool(pids_with(marker)))
        await client.kill(task_id)
        assert (await terminal(framework, task_id)).state == mesos_pb2.TASK_KILLED
        await until(lambda: not pids_with(marker))
        await until(lambda: not containers(root) and not containers(root, "cpu"))
        await framework.stop()


async def test_a_custom_executor_runs_in_a_pid_namespace_of_its_own(cluster: Cluster,
                                                                   root: str) -> None:
    # Custom executors are exec'd (through util-linux unshare), not forked by the fork server.
    async with scheduler(cluster) as framework:
        offer = await framework.offer()
        await framework.launch_modes(offer, "custom", "run")
        report = report_of(await framework.update("custom", mesos_pb2.TASK_RUNNING))
        # pid 1 is the shell its CommandInfo runs under (shell=true); the executor comes next.
        assert report["pid"] <= 2
        assert len(containers(root)) == 1  # and in its cgroups
        await framework.client.kill("custom", offer.agent_id.value)
        await framework.update("custom", mesos_pb2.TASK_KILLED)


async def test_orphans_of_the_namespace_are_reaped_not_left_as_zombies(
        cluster: Cluster, root: str) -> None:
    # Five short-lived orphans: their parent subshells exit at once, so they are re-parented
    # to the executor (pid 1), which has to reap them when they end.
    command = "for i in 1 2 3 4 5; do (sleep 0.2 &); done; sleep 300"
    async with SchedulerClient(cluster.master, framework_info()) as client:
        framework, task_id = await launch_one(client, command, cpus=0.1, mem=64)
        await framework.update(task_id, mesos_pb2.TASK_STARTING)
        await framework.update(task_id, mesos_pb2.TASK_RUNNING)
        [container] = containers(root)

        def zombies() -> list[int]:
            # A zombie has left its cgroups: look for children of the container's processes.
            with open(f"/sys/fs/cgroup/memory/{root}/{container}/cgroup.procs") as procs:
                pids = [int(pid) for pid in procs.read().split()]
            found = []
            for pid in pids:
                with contextlib.suppress(psutil.Error):
                    found += [child.pid for child in psutil.Process(pid).children()
                              if child.status() == psutil.STATUS_ZOMBIE]
            return found

        await asyncio.sleep(1.0)  # the orphans have ended
        await until(lambda: not zombies(), timeout=5)
        await client.kill(task_id)
        assert (await terminal(framework, task_id)).state == mesos_pb2.TASK_KILLED
        await framework.stop()


async def test_a_task_cannot_hand_itself_rootfs_instructions(cluster: Cluster, root: str) -> None:
    # MESOS_TASK_LAUNCH_INFO is the agent's to set; a task's own variable of that name would
    # otherwise have the executor enter any "rootfs" it names, as root.
    async with SchedulerClient(cluster.master, framework_info()) as client:
        framework = TestFramework(client)
        await framework.start()
        offer = (await framework.offers())[0]
        task = command_task(offer, 'test -z "$MESOS_TASK_LAUNCH_INFO"')
        variable = task.command.environment.variables.add()
        variable.name = "MESOS_TASK_LAUNCH_INFO"
        variable.value = '{"rootfs": "/nonexistent", "argv": ["false"]}'
        await client.accept([offer.id.value], [task], refuse_seconds=0)
        status = await terminal(framework, task.task_id.value)
        assert status.state == mesos_pb2.TASK_FINISHED, status.message
        await framework.stop()
