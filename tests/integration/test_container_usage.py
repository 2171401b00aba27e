"""``/monitor/statistics`` and ``/containers`` for Mesos-containerizer tasks: with the cgroups
isolators on this machine's real cgroup v1 hierarchies, and with the default posix isolation.

Without cgroups (not root, or not mounted read-write) the cgroups test skips, except in CI,
where it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agent_runtime.proto import mesos_pb2
from agent_runtime.scheduler.client import SchedulerClient
from tests.harness.cgroups import HIERARCHY, cgroup_root
from tests.harness.cluster import Cluster, get_json, restart_agent, running_cluster
from tests.harness.framework import TestFramework, command_task, framework_info

MB = 1024 * 1024
ENTRY_KEYS = {"executor_id", "executor_name", "framework_id", "source", "statistics"}
# Burns a little cpu so the times are above zero, then waits to be killed.
BUSY = "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 300"


@pytest.fixture
def root() -> Iterator[str]:
    yield from cgroup_root()


@pytest.fixture
def cgroups_cluster(tmp_path: Any, root: str) -> Iterator[Cluster]:
    flags = ["--isolation=cgroups/cpu,cgroups/mem", f"--cgroups_root={root}",
             "--cgroups_enable_cfs"]
    with running_cluster(str(tmp_path), agent_flags=flags) as running:
        yield running


async def _running_task(client: SchedulerClient, cpus: float, mem: float
                        ) -> tuple[TestFramework, str]:
    framework = TestFramework(client)
    await framework.start()
    offers = await framework.offers()
    task = command_task(offers[0], BUSY, cpus=cpus, mem=mem)
    await client.accept([offers[0].id.value], [task], refuse_seconds=0)
    await framework.update(task.task_id.value, mesos_pb2.TASK_STARTING)
    await framework.update(task.task_id.value, mesos_pb2.TASK_RUNNING)
    return framework, task.task_id.value


async def _get_until(url: str, done: Callable[[Any], bool], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    data = None
    while True:
        with contextlib.suppress(OSError):  # a restarted agent refuses until it serves
            data = await asyncio.to_thread(get_json, url)
            if done(data):
                return data
        assert time.monotonic() < deadline, f"{url} never got there: {data}"
        await asyncio.sleep(0.1)


def _has_cpu_time(entries: list[dict[str, Any]]) -> bool:
    return len(entries) == 1 and entries[0]["statistics"].get("cpus_user_time_secs", 0) > 0


async def _check_endpoints(cluster: Cluster, framework: TestFramework, task_id: str,
                           cpus_limit: float, mem_limit_bytes: int) -> dict[str, Any]:
    """The shape of both endpoints for the one running task; its /containers entry."""
    agent = f"http://127.0.0.1:{cluster.agent_ports[0]}"
    framework_id = framework.client.framework_id
    (entry,) = await _get_until(agent + "/monitor/statistics", _has_cpu_time)
    assert set(entry) == ENTRY_KEYS
    # The command executor is named after its task.
    assert entry["executor_id"] == task_id
    assert entry["framework_id"] == framework_id
    assert entry["executor_name"].startswith("Command Executor")
    statistics = entry["statistics"]
    assert statistics["timestamp"] == pytest.approx(time.time(), abs=10)
    assert statistics["cpus_limit"] == pytest.approx(cpus_limit)
    assert statistics["mem_limit_bytes"] == mem_limit_bytes
    assert statistics["cpus_system_time_secs"] >= 0
    assert statistics["mem_rss_bytes"] > 0
    for alias in ("/monitor/statistics.json", "/slave(1)/monitor/statistics"):
        assert [e["executor_id"] for e in get_json(agent + alias)] == [task_id]

    (container,) = get_json(agent + "/containers")
    assert set(container) == ENTRY_KEYS | {"container_id", "status"}
    assert {key: container[key] for key in ENTRY_KEYS - {"statistics"}} \
        == {key: entry[key] for key in ENTRY_KEYS - {"statistics"}}
    assert container["status"]["container_id"] == {"value": container["container_id"]}
    assert container["status"]["executor_pid"] > 0
    assert container["statistics"]["mem_limit_bytes"] == mem_limit_bytes
    assert container["statistics"]["cpus_limit"] == pytest.approx(cpus_limit)
    # The query narrows the list, as Mesos's.
    container_id = container["container_id"]
    for query in (f"container_id={container_id}", f"framework_id={framework_id}",
                  f"executor_id={task_id}"):
        assert [c["container_id"] for c in get_json(f"{agent}/containers?{query}")] \
            == [container_id]
    for query in ("container_id=other", "framework_id=other", "executor_id=other"):
        assert get_json(f"{agent}/containers?{query}") == []
    assert [c["container_id"] for c in get_json(agent + "/slave(1)/containers")] \
        == [container_id]
    return dict(container)


@pytest.mark.cgroups
async def test_cgroups_statistics_of_a_mesos_container(cgroups_cluster: Cluster, root: str
                                                       ) -> None:
    async with SchedulerClient(cgroups_cluster.master, framework_info()) as client:
        framework, task_id = await _running_task(client, cpus=0.5, mem=64)
        # The task's resources plus the command executor's own 0.1 cpus and 32 MB: the limits
        # the cgroups enforce.
        container = await _check_endpoints(cgroups_cluster, framework, task_id,
                                           cpus_limit=0.6, mem_limit_bytes=96 * MB)
        assert os.path.isdir(os.path.join(HIERARCHY, "memory", root, container["container_id"]))
        statistics = container["statistics"]
        # What only the cgroups tell: the cgroup's total and CFS accounting.
        assert statistics["mem_total_bytes"] >= statistics["mem_rss_bytes"]
        assert "mem_cache_bytes" in statistics
        assert "cpus_nr_periods" in statistics
        assert statistics["processes"] >= 2  # the executor and its task's shell
        await client.kill(task_id)
        await framework.update(task_id, mesos_pb2.TASK_KILLED)
        agent = f"http://127.0.0.1:{cgroups_cluster.agent_ports[0]}"
        await _get_until(agent + "/containers", lambda data: data == [])
        await framework.stop()


async def test_posix_statistics_of_a_mesos_container(cluster: Cluster) -> None:
    async with SchedulerClient(cluster.master, framework_info()) as client:
        framework, task_id = await _running_task(client, cpus=0.5, mem=64)
        # Nothing enforces a limit under posix isolation: the allocation is reported.
        container = await _check_endpoints(cluster, framework, task_id,
                                           cpus_limit=0.6, mem_limit_bytes=96 * MB)
        assert container["statistics"]["processes"] >= 2
        await client.kill(task_id)
        await framework.update(task_id, mesos_pb2.TASK_KILLED)
        await framework.stop()


@pytest.mark.cgroups
async def test_cgroups_statistics_survive_an_agent_restart(cgroups_cluster: Cluster) -> None:
    """The twin of the launch above: the restarted agent adopts the executor and reads its
    cgroups again (the cpus limit now from the CFS quota, not the launch's record)."""
    async with SchedulerClient(cgroups_cluster.master,
                               framework_info(checkpoint=True)) as client:
        framework, task_id = await _running_task(client, cpus=0.5, mem=64)
        agent = f"http://127.0.0.1:{cgroups_cluster.agent_ports[0]}"
        await _get_until(agent + "/monitor/statistics", _has_cpu_time)
        await asyncio.to_thread(restart_agent, cgroups_cluster)
        (entry,) = await _get_until(agent + "/monitor/statistics", _has_cpu_time)
        assert entry["executor_id"] == task_id
        assert entry["statistics"]["cpus_limit"] == pytest.approx(0.6)
        assert entry["statistics"]["mem_limit_bytes"] == 96 * MB
        (container,) = get_json(agent + "/containers")
        assert container["statistics"]["mem_limit_bytes"] == 96 * MB
        await client.kill(task_id)
        status = await framework.update(task_id)
        while status.state in (mesos_pb2.TASK_STARTING, mesos_pb2.TASK_RUNNING):
            status = await framework.update(task_id)
        assert status.state == mesos_pb2.TASK_KILLED
        await framework.stop()
