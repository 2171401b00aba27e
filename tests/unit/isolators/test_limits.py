"""Resources to cgroup limits: cpu.shares, CFS quota, memory.limit_in_bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_runtime.agent.config import AgentConfig
from agent_runtime.containerizer.cgroup_backend import select_backend
from agent_runtime.containerizer.cgroups_v2 import CgroupsV2
from agent_runtime.containerizer.containerizer import ContainerConfig
from agent_runtime.containerizer.isolation import check, parse
from agent_runtime.containerizer.isolator import container_resources
from agent_runtime.errors import FlagError
from agent_runtime.isolators.cgroups_cpu import cpu_controls
from agent_runtime.isolators.cgroups_mem import memory_limit_bytes
from agent_runtime.isolators.registry import REGISTRY
from agent_runtime.proto import mesos_pb2
from agent_runtime.resources import Resources


def test_cpu_shares_are_1024_per_cpu_with_a_floor_of_2() -> None:
    assert cpu_controls(1.0, False) == {"cpu.shares": "1024"}
    assert cpu_controls(0.6, False) == {"cpu.shares": "614"}
    assert cpu_controls(0.0, False) == {"cpu.shares": "2"}
    assert cpu_controls(0.001, False) == {"cpu.shares": "2"}


def test_cfs_quota_is_cpus_times_the_period() -> None:
    assert cpu_controls(0.5, True) == {
        "cpu.shares": "512", "cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "50000"}
    assert cpu_controls(2.0, True)["cpu.cfs_quota_us"] == "200000"
    assert cpu_controls(0.001, True)["cpu.cfs_quota_us"] == "1000"  # the kernel's minimum


def test_memory_limit_is_mem_megabytes_at_least_32() -> None:
    assert memory_limit_bytes(96) == 96 * 1024 * 1024
    assert memory_limit_bytes(10) == 32 * 1024 * 1024
    assert memory_limit_bytes(64.7) == 64 * 1024 * 1024


def _config(executor: Resources, tasks: list[Resources], command: bool) -> ContainerConfig:
    info = mesos_pb2.ExecutorInfo()
    info.resources.extend(executor.to_proto())
    task_infos = []
    for resources in tasks:
        task = mesos_pb2.TaskInfo()
        task.resources.extend(resources.to_proto())
        task_infos.append(task)
    return ContainerConfig("c", "a", mesos_pb2.FrameworkInfo(), info, tuple(task_infos),
                           command, "/tmp", {})


def test_container_resources_add_tasks_to_a_custom_executor_only() -> None:
    task = Resources.scalar_of("cpus", 0.5) + Resources.scalar_of("mem", 64)
    own = Resources.scalar_of("cpus", 0.1) + Resources.scalar_of("mem", 32)
    # The command executor's ExecutorInfo already holds its task's resources plus its own.
    command = container_resources(_config(task + own, [task], command=True))
    assert command.scalar("cpus") == pytest.approx(0.6)
    assert command.scalar("mem") == 96
    custom = container_resources(_config(own, [task, task], command=False))
    assert custom.scalar("cpus") == pytest.approx(1.1)
    assert custom.scalar("mem") == 160


def test_isolation_flag_names_are_checked() -> None:
    known = [spec.name for spec in REGISTRY]
    assert parse("posix/cpu, posix/mem", known) == ["posix/cpu", "posix/mem"]
    assert parse("cgroups/cpu,cgroups/mem,cgroups/cpu", known) == ["cgroups/cpu", "cgroups/mem"]
    assert parse("process,cgroups", known) == ["posix/cpu", "posix/mem", "cgroups/cpu",
                                                "cgroups/mem"]
    with pytest.raises(FlagError, match="network/cni"):
        parse("cgroups/cpu,network/cni", known)


def test_isolation_combinations_mesos_refuses_are_refused() -> None:
    with pytest.raises(FlagError, match="namespaces/pid needs filesystem/linux"):
        check(REGISTRY, ["namespaces/pid"], [])
    with pytest.raises(FlagError, match="only one filesystem isolator"):
        check(REGISTRY, ["filesystem/linux", "filesystem/posix"], [])
    with pytest.raises(FlagError, match="docker/runtime"):
        check(REGISTRY, ["filesystem/linux"], ["docker"])
    with pytest.raises(FlagError, match="filesystem/linux and docker/runtime"):
        check(REGISTRY, ["posix/cpu"], ["appc", "docker"])
    with pytest.raises(FlagError, match="gpu/nvidia needs cgroups/devices, named before it"):
        check(REGISTRY, ["gpu/nvidia", "cgroups/devices"], [])
    check(REGISTRY, ["filesystem/linux", "docker/runtime", "namespaces/pid"], ["appc", "docker"])
    check(REGISTRY, ["cgroups/devices", "gpu/nvidia"], [])


def test_a_unified_hierarchy_gets_the_v2_backend(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    assert isinstance(select_backend(str(tmp_path)), CgroupsV2)
    with pytest.raises(FlagError, match="no such directory"):
        select_backend(str(tmp_path) + "/missing")
    assert AgentConfig().isolation == "posix/cpu,posix/mem"
