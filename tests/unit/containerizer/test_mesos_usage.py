"""``MesosContainerizer.usage``: real processes, launched by the real containerizer, burning cpu
and holding memory; measured by the cgroups isolators in this machine's real cgroup v1
hierarchies, or without them from the executor's process tree (posix/cpu, posix/mem)."""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent_runtime.containerizer.cgroups import CgroupsV1
from agent_runtime.containerizer.containerizer import ContainerConfig
from agent_runtime.containerizer.isolator import Isolator
from agent_runtime.containerizer.launcher import PosixLauncher
from agent_runtime.containerizer.mesos import MesosContainerizer
from agent_runtime.containerizer.posix_usage import process_tree_usage
from agent_runtime.isolators.cgroups_cpu import CpuIsolator
from agent_runtime.isolators.cgroups_mem import MemIsolator
from agent_runtime.proto import mesos_pb2
from agent_runtime.resources import Resources
from tests.harness.cgroups import HIERARCHY, cgroup_root

MB = 1024 * 1024
ALLOCATION = 100 * MB
# Touches every page of 100 MB (bytes of b"x", not a lazily mapped bytearray), burns 0.5 s of
# cpu in a child (so the tree, not just the executor, is measured), then waits to be killed.
PROGRAM = f"""
import os, time
hold = b"x" * {ALLOCATION}
if os.fork() == 0:
    while time.process_time() < 0.5:
        pass
    time.sleep(60)
    os._exit(0)
time.sleep(60)
"""


def _config(container_id: str, directory: Path, cpus: float, mem: float) -> ContainerConfig:
    info = mesos_pb2.ExecutorInfo()
    info.executor_id.value = container_id
    info.command.value = f"exec {shlex.quote(sys.executable)} -c {shlex.quote(PROGRAM)}"
    info.resources.extend(
        (Resources.scalar_of("cpus", cpus) + Resources.scalar_of("mem", mem)).to_proto())
    directory.mkdir(parents=True, exist_ok=True)
    return ContainerConfig(container_id, "agent", mesos_pb2.FrameworkInfo(), info, (),
                           False, str(directory), {})


async def _usage_when(containerizer: MesosContainerizer, container_id: str,
                      done: Callable[[mesos_pb2.ResourceStatistics], bool]
                      ) -> mesos_pb2.ResourceStatistics:
    """The first usage that satisfies ``done`` (the cpu burn takes a moment)."""
    deadline = time.monotonic() + 15
    while True:
        usage = await containerizer.usage(container_id)
        assert usage is not None
        if done(usage):
            return usage
        assert time.monotonic() < deadline, f"usage never got there: {usage}"
        await asyncio.sleep(0.1)


def _burnt_and_held(usage: mesos_pb2.ResourceStatistics) -> bool:
    return usage.cpus_user_time_secs + usage.cpus_system_time_secs >= 0.4 \
        and usage.mem_rss_bytes > ALLOCATION


@pytest.fixture
def root() -> Iterator[str]:
    yield from cgroup_root()


@pytest.mark.cgroups
async def test_cgroups_usage_of_a_burning_allocating_container(root: str, tmp_path: Path
                                                               ) -> None:
    cgroups = CgroupsV1(HIERARCHY)
    isolators: list[Isolator] = [CpuIsolator(cgroups, root, enable_cfs=True),
                                 MemIsolator(cgroups, root)]
    containerizer = MesosContainerizer(PosixLauncher(), isolators)
    # A fifth of a cpu: even on a loaded machine (a share of a core well under a half) the
    # child's burn overruns a quota this small in some period, so throttling is certain.
    process = await containerizer.launch(_config("c1", tmp_path / "c1", cpus=0.2, mem=256))
    try:
        usage = await _usage_when(containerizer, "c1", lambda u: _burnt_and_held(u) and
                                  u.cpus_nr_throttled > 0)
        # The executor joined the cpuacct hierarchy too: this machine mounts it apart from cpu.
        with open(f"{HIERARCHY}/cpuacct/{root}/c1/cgroup.procs") as file:
            assert str(process.pid) in file.read().split()
        assert usage.timestamp == pytest.approx(time.time(), abs=5)
        assert usage.cpus_limit == 0.2
        assert usage.mem_limit_bytes == 256 * MB
        assert usage.mem_total_bytes >= usage.mem_rss_bytes > ALLOCATION
        assert usage.mem_anon_bytes == usage.mem_rss_bytes
        assert usage.HasField("mem_cache_bytes")
        assert usage.processes == 2  # the executor and its child
        # A quota of a fifth of a cpu against a child that wants a whole one: throttled.
        assert usage.cpus_nr_periods > 0
        assert usage.cpus_nr_throttled > 0
        assert usage.cpus_throttled_time_secs > 0
    finally:
        await containerizer.destroy("c1", process, 0.0)
        await containerizer.cleanup("c1")
    assert await containerizer.usage("c1") is None
    assert not os.path.exists(f"{HIERARCHY}/cpuacct/{root}/c1")


async def test_posix_usage_sums_the_executor_process_tree(tmp_path: Path) -> None:
    containerizer = MesosContainerizer(PosixLauncher())
    process = await containerizer.launch(_config("c1", tmp_path / "c1", cpus=1, mem=256))
    try:
        usage = await _usage_when(containerizer, "c1", _burnt_and_held)
        assert usage.processes == 2
        assert usage.threads >= 2
        assert usage.timestamp > 0
        # Posix isolation enforces no limit: the agent adds the allocation (http.py).
        assert not usage.HasField("cpus_limit")
        assert not usage.HasField("mem_limit_bytes")
    finally:
        await containerizer.destroy("c1", process, 0.0)
        await containerizer.cleanup("c1")
    assert await containerizer.usage("c1") is None
    assert await containerizer.usage("never-launched") is None


def test_a_recycled_pid_is_not_measured() -> None:
    me = os.getpid()
    assert process_tree_usage(me, 0.0) is not None  # no start time known: trusted
    assert process_tree_usage(me, 1.0) is None  # started at another time: someone else
    assert process_tree_usage(2**22 + 1, 0.0) is None  # above pid_max: no such process
