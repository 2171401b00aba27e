"""``cgroups/cpu``: cpu.shares 1024 per cpu, and a CFS quota with ``--cgroups_enable_cfs``."""

from __future__ import annotations

from agent_runtime.agent.config import AgentConfig
from agent_runtime.containerizer.cgroups import Cgroups
from agent_runtime.containerizer.containerizer import ContainerConfig
from agent_runtime.containerizer.isolator import LaunchInfo, container_resources

from .cgroup import CgroupIsolator

CPU_SHARES_PER_CPU = 1024
MIN_CPU_SHARES = 2  # the kernel's own floor
CFS_PERIOD_US = 100_000
MIN_CFS_QUOTA_US = 1_000  # the kernel refuses less


def cpu_controls(cpus: float, enable_cfs: bool) -> dict[str, str]:
    """The cpu controller files and values for ``cpus``, in the order they are written."""
    controls = {"cpu.shares": str(max(MIN_CPU_SHARES, int(CPU_SHARES_PER_CPU * cpus)))}
    if enable_cfs:
        controls["cpu.cfs_period_us"] = str(CFS_PERIOD_US)
        controls["cpu.cfs_quota_us"] = str(max(MIN_CFS_QUOTA_US, int(CFS_PERIOD_US * cpus)))
    return controls


class CpuIsolator(CgroupIsolator):
    controller = "cpu"

    def __init__(self, cgroups: Cgroups, root: str, enable_cfs: bool) -> None:
        super().__init__(cgroups, root)
        self.enable_cfs = enable_cfs

    async def prepare(self, container_id: str, config: ContainerConfig) -> LaunchInfo | None:
        cgroup = self.cgroup(container_id)
        self.cgroups.create(self.controller, cgroup)
        cpus = container_resources(config).scalar("cpus")
        for control, value in cpu_controls(cpus, self.enable_cfs).items():
            self.cgroups.write(self.controller, cgroup, control, value)
        return LaunchInfo(cgroup_procs=(self.procs_file(container_id),))


def create(config: AgentConfig, cgroups: Cgroups) -> CpuIsolator:
    return CpuIsolator(cgroups, config.cgroups_root, config.cgroups_enable_cfs)
