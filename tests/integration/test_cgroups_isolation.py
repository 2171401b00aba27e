"""``--isolation=cgroups/cpu,cgroups/mem`` against the real cgroup v1 hierarchies of this machine.

Each test uses its own ``--cgroups_root`` so runs never see each other's cgroups. Without cgroups
(not root, or not mounted read-write) the tests skip, except in CI, where they fail.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from agent_runtime.containerizer.cgroups import CgroupsV1
from agent_runtime.proto import mesos_pb2
from agent_runtime.scheduler.client import SchedulerClient
from tests.harness.cgroups import CONTROLLERS, HIERARCHY, cgroup_root, containers
from tests.harness.cluster import Cluster, restart_agent, running_cluster
from tests.harness.framework import (
    framework_info,
    launch_one,
    terminal,
)
from tests.harness.processes import pids_with
from tests.harness.wait import until

pytestmark = pytest.mark.cgroups
Status = mesos_pb2.TaskStatus


@pytest.fixture
def root() -> Iterator[str]:
    yield from cgroup_root()


@pytest.fixture
def cluster(tmp_path: Any, root: str) -> Iterator[Cluster]:
    flags = ["--isolation=cgroups/cpu,cgroups/mem", f"--cgroups_root={root}"]
    with running_cluster(str(tmp_path), agent_flags=flags) as running:
        yield running


def _read(controller: str, root: str, container: str, control: str) -> str:
    with open(os.path.join(HIERARCHY, controller, root, container, control)) as file:
        return file.read().strip()


async def test_limits_match_the_task_resources(cluster: Cluster, root: str) -> None:
    async with SchedulerClient(cluster.master, framework_info()) as client:
        framework, task_id = await launch_one(client, "sleep 300", cpus=0.5, mem=64)
        await framework.update(task_id, mesos_pb2.TASK_STARTING)
        await framework.update(task_id, mesos_pb2.TASK_RUNNING)
        [container] = containers(root)
        # The task's resources plus the command executor's own 0.1 cpus and 32 MB.
        assert _read("cpu", root, container, "cpu.shares") == str(int(1024 * 0.6))
        assert _read("memory", root, container, "memory.limit_in_bytes") == str(96 * 1024 * 1024)
        procs = _read("memory", root, container, "cgroup.procs").split()
        assert len(procs) >= 2  # the executor and its task's shell, both inside
        assert _read("cpu", root, container, "cgroup.procs").split() == procs
        await client.kill(task_id)
        await framework.update(task_id, mesos_pb2.TASK_KILLED)
        await framework.stop()


async def test_a_task_over_its_memory_fails_with_the_memory_limitation(
        cluster: Cluster, root: str) -> None:
    async with SchedulerClient(cluster.master, framework_info()) as client:
        framework, task_id = await launch_one(
            client, "python3 -c 'b = bytearray(200 * 1024 * 1024); import time; time.sleep(30)'",
            cpus=0.1, mem=32)
        status = await terminal(framework, task_id)
        assert mesos_pb2.TaskState.Name(status.state) == "TASK_FAILED", status.message
        assert status.source == Status.SOURCE_AGENT
        assert status.reason == Status.REASON_CONTAINER_LIMITATION_MEMORY
        assert "Memory limit exceeded" in status.message
        await until(lambda: not containers(root) and not containers(root, "cpu"))
        await framework.stop()


async def test_a_kill_leaves_no_process_and_no_cgroup(cluster: Cluster, root: str) -> None:
    marker = f"stray-{uuid.uuid4().hex[:8]}"
    # A background child in a session of its own: out of the executor's process group.
    command = f"setsid sh -c 'exec -a {marker} sleep 300' & sleep 300"
    async with SchedulerClient(cluster.master, framework_info()) as client:
        framework, task_id = await launch_one(client, command, cpus=0.1, mem=64)
        await framework.update(task_id, mesos_pb2.TASK_STARTING)
        await framework.update(task_id, mesos_pb2.TASK_RUNNING)
        await until(lambda: bool(pids_with(marker)))
        [container] = containers(root)
        assert str(pids_with(marker)[0]) in \
            _read("memory", root, container, "cgroup.procs").split()
        await client.kill(task_id)
        await framework.update(task_id, mesos_pb2.TASK_KILLED)
        await until(lambda: not pids_with(marker))
        await until(lambda: not containers(root) and not containers(root, "cpu"))
        await framework.stop()


async def test_a_restarted_agent_keeps_known_cgroups_and_removes_orphans(
        cluster: Cluster, root: str) -> None:
    backend = CgroupsV1(HIERARCHY)
    async with SchedulerClient(cluster.master, framework_info(checkpoint=True)) as client:
        framework, task_id = await launch_one(client, "sleep 300", cpus=0.1, mem=64)
        await framework.update(task_id, mesos_pb2.TASK_STARTING)
        await framework.update(task_id, mesos_pb2.TASK_RUNNING)
        [container] = containers(root)
        # An orphan: a cgroup under our root, with a process, that no checkpoint names.
        orphan = subprocess.Popen(["sleep", "300"])
        for controller in CONTROLLERS:
            backend.create(controller, f"{root}/orphan")
            backend.write(controller, f"{root}/orphan", "cgroup.procs", str(orphan.pid))

        await asyncio.to_thread(restart_agent, cluster)
        assert await asyncio.to_thread(orphan.wait, 60) == -signal.SIGKILL
        await until(lambda: containers(root) == [container] == containers(root, "cpu"))

        await client.kill(task_id)
        assert (await terminal(framework, task_id)).state == mesos_pb2.TASK_KILLED
        await until(lambda: not containers(root) and not containers(root, "cpu"))
        await framework.stop()


async def test_a_recovered_container_over_its_memory_still_fails_with_the_limitation(
        cluster: Cluster, root: str) -> None:
    # The OOM killer is off in the container's cgroup (the agent reports the OOM itself), so
    # without the watch re-armed after a restart the task would hang at its limit for good.
    command = ("sleep 3; python3 -c 'b = bytearray(200 * 1024 * 1024); "
               "import time; time.sleep(30)'")
    async with SchedulerClient(cluster.master, framework_info(checkpoint=True)) as client:
        framework, task_id = await launch_one(client, command, cpus=0.1, mem=32)
        await framework.update(task_id, mesos_pb2.TASK_STARTING)
        await framework.update(task_id, mesos_pb2.TASK_RUNNING)
        await asyncio.to_thread(restart_agent, cluster)
        status = await terminal(framework, task_id)
        assert mesos_pb2.TaskState.Name(status.state) == "TASK_FAILED", status.message
        assert status.reason == Status.REASON_CONTAINER_LIMITATION_MEMORY
        await until(lambda: not containers(root) and not containers(root, "cpu"))
        await framework.stop()
