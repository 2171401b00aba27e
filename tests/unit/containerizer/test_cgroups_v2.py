"""The cgroup v2 backend against a FAKE unified hierarchy: plain files in a tmp directory.

This machine mounts cgroup v1 only, so no test here touches a kernel cgroup: ``FakeKernel`` plays
the kernel's part (a new cgroup directory comes with ``cgroup.controllers``, ``memory.events``,
... as plain files) and the tests check what the backend writes and how it reads back: the v1
names the isolators use translated to v2's, the controllers handed down through
``cgroup.subtree_control``, the choice of backend, and the mem isolator's ``memory.events`` watch.
What they cannot check is the kernel's own answer to those writes.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from agent_runtime.containerizer.cgroup_backend import select_backend
from agent_runtime.containerizer.cgroups import CgroupsV1
from agent_runtime.containerizer.cgroups_v2 import (
    V1_UNLIMITED,
    CgroupsV2,
    shares_to_weight,
    weight_to_shares,
)
from agent_runtime.containerizer.containerizer import ContainerConfig
from agent_runtime.errors import FlagError, LaunchError
from agent_runtime.isolators.cgroups_cpu import CpuIsolator
from agent_runtime.isolators.cgroups_mem import MemIsolator
from agent_runtime.proto import mesos_pb2
from agent_runtime.resources import Resources

CONTROLLERS = "cpuset cpu io memory pids"
# What the kernel puts in every new cgroup directory (the files these tests read).
KERNEL_FILES = {
    "cgroup.procs": "",
    "cgroup.subtree_control": "",
    "cgroup.kill": "",
    "cpu.weight": "100\n",
    "cpu.max": "max 100000\n",
    "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\n"
                "nr_periods 0\nnr_throttled 0\nthrottled_usec 0\n",
    "memory.current": "0\n",
    "memory.max": "max\n",
    "memory.low": "0\n",
    "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n",
    "memory.stat": "anon 0\nfile 0\n",
}


class FakeKernel(CgroupsV2):
    """CgroupsV2 over plain files: ``create`` adds the files the kernel would, ``remove``
    deletes them first (the kernel's rmdir takes them along)."""

    def create(self, controller: str, cgroup: str) -> str:
        path = super().create(controller, cgroup)
        with open(os.path.join(path, "cgroup.controllers"), "w") as file:
            file.write(CONTROLLERS + "\n")
        for name, content in KERNEL_FILES.items():
            if not os.path.exists(os.path.join(path, name)):
                with open(os.path.join(path, name), "w") as file:
                    file.write(content)
        return path

    def remove(self, controller: str, cgroup: str) -> None:
        path = self.path(controller, cgroup)
        if os.path.isdir(path):
            for entry in os.scandir(path):
                if entry.is_file():
                    os.unlink(entry.path)
        super().remove(controller, cgroup)


@pytest.fixture
def hierarchy(tmp_path: Path) -> Path:
    (tmp_path / "cgroup.controllers").write_text(CONTROLLERS + "\n")
    (tmp_path / "cgroup.subtree_control").write_text("")
    return tmp_path


def _text(path: Path) -> str:
    return path.read_text().strip()


def _config(cpus: float, mem: float) -> ContainerConfig:
    info = mesos_pb2.ExecutorInfo()
    info.resources.extend(
        (Resources.scalar_of("cpus", cpus) + Resources.scalar_of("mem", mem)).to_proto())
    return ContainerConfig("c1", "a", mesos_pb2.FrameworkInfo(), info, (), False, "/tmp", {})


def test_select_backend_picks_v2_for_a_unified_hierarchy(hierarchy: Path) -> None:
    assert type(select_backend(str(hierarchy))) is CgroupsV2
    (hierarchy / "cgroup.controllers").unlink()
    assert type(select_backend(str(hierarchy))) is CgroupsV1
    with pytest.raises(FlagError, match="no such directory"):
        select_backend(str(hierarchy / "missing"))


def test_one_directory_for_every_controller(hierarchy: Path) -> None:
    cgroups = FakeKernel(str(hierarchy))
    assert cgroups.path("cpu", "mesos/c1") == cgroups.path("memory", "mesos/c1") \
        == str(hierarchy / "mesos" / "c1")


def test_create_hands_the_controller_down_from_the_top(hierarchy: Path) -> None:
    cgroups = FakeKernel(str(hierarchy))
    cgroups.create("memory", "mesos")
    cgroups.create("memory", "mesos/c1")
    assert _text(hierarchy / "cgroup.subtree_control") == "+memory"
    assert _text(hierarchy / "mesos" / "cgroup.subtree_control") == "+memory"
    assert _text(hierarchy / "mesos" / "c1" / "cgroup.subtree_control") == ""  # a leaf
    # cpuacct is v2's cpu; an enabled controller is not written again.
    (hierarchy / "cgroup.subtree_control").write_text("cpu memory\n")
    cgroups.create("cpuacct", "mesos/c2")
    assert _text(hierarchy / "cgroup.subtree_control") == "cpu memory"
    assert _text(hierarchy / "mesos" / "cgroup.subtree_control") == "+cpu"


def test_a_controller_the_parent_lacks_fails_with_its_name(hierarchy: Path) -> None:
    (hierarchy / "cgroup.controllers").write_text("cpu\n")
    with pytest.raises(LaunchError, match=r"'memory' is not available"):
        FakeKernel(str(hierarchy)).create("memory", "mesos")


def test_v1_cpu_controls_are_written_as_v2(hierarchy: Path) -> None:
    cgroups = FakeKernel(str(hierarchy))
    cgroups.create("cpu", "c")
    cgroups.write("cpu", "c", "cpu.shares", "1024")
    assert _text(hierarchy / "c" / "cpu.weight") == "39"  # 1 + (1022 * 9999) // 262142
    assert cgroups.read("cpu", "c", "cpu.shares") == "998"  # the mapping is lossy
    cgroups.write("cpu", "c", "cpu.cfs_period_us", "50000")
    assert _text(hierarchy / "c" / "cpu.max") == "max 50000"
    cgroups.write("cpu", "c", "cpu.cfs_quota_us", "25000")
    assert _text(hierarchy / "c" / "cpu.max") == "25000 50000"
    assert cgroups.read("cpu", "c", "cpu.cfs_quota_us") == "25000"
    assert cgroups.read("cpu", "c", "cpu.cfs_period_us") == "50000"
    cgroups.write("cpu", "c", "cpu.cfs_quota_us", "-1")
    assert _text(hierarchy / "c" / "cpu.max") == "max 50000"
    assert cgroups.read("cpu", "c", "cpu.cfs_quota_us") == "-1"


def test_shares_and_weight_map_end_to_end() -> None:
    assert (shares_to_weight(2), shares_to_weight(262144)) == (1, 10000)
    assert (weight_to_shares(1), weight_to_shares(10000)) == (2, 262144)


def test_v1_memory_controls_are_written_and_read_as_v2(hierarchy: Path) -> None:
    cgroups = FakeKernel(str(hierarchy))
    cgroups.create("memory", "c")
    cgroups.write("memory", "c", "memory.limit_in_bytes", str(64 << 20))
    cgroups.write("memory", "c", "memory.soft_limit_in_bytes", str(32 << 20))
    assert _text(hierarchy / "c" / "memory.max") == str(64 << 20)
    assert _text(hierarchy / "c" / "memory.low") == str(32 << 20)
    assert cgroups.read("memory", "c", "memory.limit_in_bytes") == str(64 << 20)
    cgroups.write("memory", "c", "memory.limit_in_bytes", "-1")
    assert _text(hierarchy / "c" / "memory.max") == "max"
    assert cgroups.read("memory", "c", "memory.limit_in_bytes") == V1_UNLIMITED
    (hierarchy / "c" / "memory.current").write_text("12345\n")
    assert cgroups.read("memory", "c", "memory.usage_in_bytes").strip() == "12345"
    # No memory.peak (before Linux 5.19): the current usage stands in for the maximum.
    assert cgroups.read("memory", "c", "memory.max_usage_in_bytes").strip() == "12345"
    cgroups.write("pids", "c", "pids.max", "100")
    assert _text(hierarchy / "c" / "pids.max") == "100"
    with pytest.raises(LaunchError, match="no cgroup v2 equivalent"):
        cgroups.write("memory", "c", "memory.oom_control", "1")


def test_kill_all_writes_cgroup_kill(hierarchy: Path) -> None:
    cgroups = FakeKernel(str(hierarchy))
    cgroups.create("memory", "c")
    (hierarchy / "c" / "cgroup.procs").write_text("999999\n")  # a fake kernel kills nothing
    with pytest.raises(LaunchError, match=r"survive cgroup\.kill"):
        cgroups.kill_all("memory", "c", timeout=0.05)
    assert _text(hierarchy / "c" / "cgroup.kill") == "1"


async def test_usage_reads_v2_statistics_in_v1_terms(hierarchy: Path) -> None:
    cgroups = FakeKernel(str(hierarchy))
    cpu = CpuIsolator(cgroups, "mesos", enable_cfs=True)
    mem = MemIsolator(cgroups, "mesos")
    assert not cpu.separate_cpuacct  # one tree: cpu.stat serves as cpuacct.stat
    config = _config(cpus=0.5, mem=64)
    for isolator in (cpu, mem):
        info = await isolator.prepare("c1", config)
        assert info is not None
        assert info.cgroup_procs == (str(hierarchy / "mesos" / "c1" / "cgroup.procs"),)
    container = hierarchy / "mesos" / "c1"
    assert _text(container / "cpu.max") == "50000 100000"
    assert _text(container / "memory.max") == str(64 << 20)
    assert _text(container / "memory.oom.group") == "1"
    (container / "cpu.stat").write_text(
        "usage_usec 3000000\nuser_usec 2500000\nsystem_usec 500000\n"
        "nr_periods 40\nnr_throttled 7\nthrottled_usec 250000\n")
    (container / "memory.current").write_text(f"{50 << 20}\n")
    (container / "memory.stat").write_text(f"anon {40 << 20}\nfile {10 << 20}\nfile_mapped 4096\n")
    (container / "cgroup.procs").write_text("1\n2\n")
    usage = mesos_pb2.ResourceStatistics()
    for isolator in (cpu, mem):
        statistics = await isolator.usage("c1")
        assert statistics is not None
        usage.MergeFrom(statistics)
    assert usage.cpus_user_time_secs == 2.5
    assert usage.cpus_system_time_secs == 0.5
    assert usage.cpus_limit == 0.5
    assert (usage.cpus_nr_periods, usage.cpus_nr_throttled) == (40, 7)
    assert usage.cpus_throttled_time_secs == 0.25
    assert usage.processes == 2
    assert usage.mem_total_bytes == 50 << 20
    assert usage.mem_rss_bytes == usage.mem_anon_bytes == 40 << 20
    assert usage.mem_cache_bytes == usage.mem_file_bytes == 10 << 20
    assert usage.mem_mapped_file_bytes == 4096
    assert usage.mem_limit_bytes == 64 << 20
    assert not usage.HasField("mem_soft_limit_bytes")  # memory.low 0: none
    (container / "cgroup.procs").write_text("")  # the fake's processes "exit"
    await mem.cleanup("c1")
    await cpu.cleanup("c1")
    assert not container.exists()
    assert await cpu.usage("c1") is None
    assert await mem.usage("c1") is None


async def test_the_mem_watch_fires_on_an_oom_kill_in_memory_events(hierarchy: Path) -> None:
    mem = MemIsolator(FakeKernel(str(hierarchy)), "mesos")
    await mem.prepare("c1", _config(cpus=0.1, mem=32))
    watch = mem.watch("c1")
    assert watch is not None
    events = hierarchy / "mesos" / "c1" / "memory.events"
    # A write that moves another counter is no OOM.
    events.write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 0\n")
    await asyncio.sleep(0.1)
    assert not watch.done()
    events.write_text("low 0\nhigh 0\nmax 4\noom 2\noom_kill 1\n")
    limitation = await asyncio.wait_for(watch, 5)
    assert limitation.reason == mesos_pb2.TaskStatus.REASON_CONTAINER_LIMITATION_MEMORY
    assert "Memory limit exceeded: Requested: 32MB" in limitation.message
    await mem.cleanup("c1")
    await mem.cleanup("c1")  # idempotent


async def test_cleanup_cancels_an_unfired_v2_watch(hierarchy: Path) -> None:
    mem = MemIsolator(FakeKernel(str(hierarchy)), "mesos")
    await mem.prepare("c1", _config(cpus=0.1, mem=32))
    watch = mem.watch("c1")
    assert watch is not None
    await mem.cleanup("c1")
    assert watch.cancelled()
    shutil.rmtree(hierarchy / "mesos")
