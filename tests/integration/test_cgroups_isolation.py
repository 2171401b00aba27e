"""``--isolation=cgroups/cpu,cgroups/mem`` against the real cgroup v1 hierarchies of this machine.

Each test uses its own ``--cgroups_root`` so runs never see each other's cgroups. Without cgroups
(not root, or not mounted read-write) the tests skip, except in CI, where they fail.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

from agent_runtime.containerizer.cgroups import CgroupsV1
from agent_runtime.proto import mesos_pb2
from agent_runtime.scheduler.client import SchedulerClient
from tests.cgroups import CONTROLLERS, HIERARCHY, cgroup_root
from tests.cluster import Cluster, running_cluster
from tests.integration.framework import TestFramework, command_task, framework_info

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


def _containers(root: str, controller: str = "memory") -> list[str]:
    path = os.path.join(HIERARCHY, controller, root)
    return [entry.name for entry in os.scandir(path) if entry.is_dir()] if os.path.isdir(path) \
        else []


async def _launch(client: SchedulerClient, command: str, cpus: float, mem: float
                  ) -> tuple[TestFramework, str]:
    framework = TestFramework(client)
    await framework.start()
    offers = await framework.offers()
    task = command_task(offers[0], command, cpus=cpus, mem=mem)
    await client.accept([offers[0].id.value], [task], refuse_seconds=0)
    return framework, task.task_id.value


async def _terminal(framework: TestFramework, task_id: str) -> mesos_pb2.TaskStatus:
    """The task's first terminal update, acknowledging the others (and their repeats) on the
    way: an unacknowledged update holds back the next one."""
    status = await framework.update(task_id, timeout=30)
    while status.state in (mesos_pb2.TASK_STARTING, mesos_pb2.TASK_RUNNING):
        status = await framework.update(task_id, timeout=30)
    return status


def _strays(marker: str) -> list[int]:
    """Processes whose command line carries ``marker``."""
    return [p.pid for p in psutil.process_iter(["cmdline"])
            if marker in " ".join(p.info["cmdline"] or [])]


async def _until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_limits_match_the_task_resources(cluster: Cluster, root: str) -> None:
    async with SchedulerClient(cluster.master, framework_info()) as client:
        framework, task_id = await _launch(client, "sleep 300", cpus=0.5, mem=64)
        await framework.update(task_id, mesos_pb2.TASK_STARTING)
        await framework.update(task_id, mesos_pb2.TASK_RUNNING)
        [container] = _containers(root)
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
        framework, task_id = await _launch(
            client, "python3 -c 'b = bytearray(200 * 1024 * 1024); import time; time.sleep(30)'",
            cpus=0.1, mem=32)
        status = await _terminal(framework, task_id)
        assert mesos_pb2.TaskState.Name(status.state) == "TASK_FAILED", status.message
        assert status.source == Status.SOURCE_AGENT
        assert status.reason == Status.REASON_CONTAINER_LIMITATION_MEMORY
        assert "Memory limit exceeded" in status.message
        await _until(lambda: not _containers(root) and not _containers(root, "cpu"))
        await framework.stop()


async def test_a_kill_leaves_no_process_and_no_cgroup(cluster: Cluster, root: str) -> None:
    marker = f"stray-{uuid.uuid4().hex[:8]}"
    # A background child in a session of its own: out of the executor's process group.
    command = f"setsid sh -c 'exec -a {marker} sleep 300' & sleep 300"
    async with SchedulerClient(cluster.master, framework_info()) as client:
        framework, task_id = await _launch(client, command, cpus=0.1, mem=64)
        await framework.update(task_id, mesos_pb2.TASK_STARTING)
        await framework.update(task_id, mesos_pb2.TASK_RUNNING)
        await _until(lambda: bool(_strays(marker)))
        [container] = _containers(root)
        assert str(_strays(marker)[0]) in \
            _read("memory", root, container, "cgroup.procs").split()
        await client.kill(task_id)
        await framework.update(task_id, mesos_pb2.TASK_KILLED)
        await _until(lambda: not _strays(marker))
        await _until(lambda: not _containers(root) and not _containers(root, "cpu"))
        await framework.stop()


async def test_a_restarted_agent_keeps_known_cgroups_and_removes_orphans(
        cluster: Cluster, root: str) -> None:
    backend = CgroupsV1(HIERARCHY)
    async with SchedulerClient(cluster.master, framework_info(checkpoint=True)) as client:
        framework, task_id = await _launch(client, "sleep 300", cpus=0.1, mem=64)
        await framework.update(task_id, mesos_pb2.TASK_STARTING)
        await framework.update(task_id, mesos_pb2.TASK_RUNNING)
        [container] = _containers(root)
        # An orphan: a cgroup under our root, with a process, that no checkpoint names.
        orphan = subprocess.Popen(["sleep", "300"])
        for controller in CONTROLLERS:
            backend.create(controller, f"{root}/orphan")
            backend.write(controller, f"{root}/orphan", "cgroup.procs", str(orphan.pid))

        cluster.kill("agent0", signal.SIGKILL)
        cluster.start_agent(0)
        cluster.wait_agents(1)
        assert orphan.wait(10) == -signal.SIGKILL
        await _until(lambda: _containers(root) == [container] == _containers(root, "cpu"))

        await client.kill(task_id)
        assert (await _terminal(framework, task_id)).state == mesos_pb2.TASK_KILLED
        await _until(lambda: not _containers(root) and not _containers(root, "cpu"))
        await framework.stop()


async def test_a_recovered_container_over_its_memory_still_fails_with_the_limitation(
        cluster: Cluster, root: str) -> None:
    # The OOM killer is off in the container's cgroup (the agent reports the OOM itself), so
    # without the watch re-armed after a restart the task would hang at its limit for good.
    command = ("sleep 3; python3 -c 'b = bytearray(200 * 1024 * 1024); "
               "import time; time.sleep(30)'")
    async with SchedulerClient(cluster.master, framework_info(checkpoint=True)) as client:
        framework, task_id = await _launch(client, command, cpus=0.1, mem=32)
        await framework.update(task_id, mesos_pb2.TASK_STARTING)
        await framework.update(task_id, mesos_pb2.TASK_RUNNING)
        cluster.kill("agent0", signal.SIGKILL)
        cluster.start_agent(0)
        cluster.wait_agents(1)
        status = await _terminal(framework, task_id)
        assert mesos_pb2.TaskState.Name(status.state) == "TASK_FAILED", status.message
        assert status.reason == Status.REASON_CONTAINER_LIMITATION_MEMORY
        await _until(lambda: not _containers(root) and not _containers(root, "cpu"))
        await framework.stop()
