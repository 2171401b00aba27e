"""``cgroups/cpu``: cpu.shares 1024 per cpu, and a CFS quota with ``--cgroups_enable_cfs``.

Usage comes from ``cpuacct.stat`` (user and system time) and, with CFS, ``cpu.stat``
(throttling). Where cpuacct is a hierarchy of its own (as on this machine; a distribution may
co-mount it with cpu) the container gets a cgroup there too, as Mesos's cgroups/cpu does.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass

from agent_runtime.containerizer.cgroups import Cgroups, flat_keyed, require_controller
from agent_runtime.containerizer.containerizer import ContainerConfig
from agent_runtime.containerizer.isolation import Host
from agent_runtime.containerizer.isolator import LaunchInfo, NestedTask, container_resources
from agent_runtime.proto import mesos_pb2

from .cgroup import CgroupIsolator, hand_over, remove_cgroup

CPU_SHARES_PER_CPU = 1024
MIN_CPU_SHARES = 2  # the kernel's own floor
CFS_PERIOD_US = 100_000
MIN_CFS_QUOTA_US = 1_000  # the kernel refuses less
CPUACCT = "cpuacct"
USER_HZ = os.sysconf("SC_CLK_TCK")  # the unit of cpuacct.stat


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
        # A cpuacct hierarchy apart from cpu's needs a cgroup of its own (v2 and co-mounted v1
        # resolve both to one directory, which then serves both).
        self.separate_cpuacct = (os.path.realpath(cgroups.path(CPUACCT, ""))
                                 != os.path.realpath(cgroups.path(self.controller, "")))
        if self.separate_cpuacct:
            require_controller(cgroups, CPUACCT, root)
        # The cpus each container was given: its exact cpus_limit (cpu.shares rounds it). After
        # an agent restart it is read back from the cgroup instead.
        self._cpus: dict[str, float] = {}

    @property
    def stats_controller(self) -> str:
        return CPUACCT if self.separate_cpuacct else self.controller

    async def prepare(self, container_id: str, config: ContainerConfig) -> LaunchInfo | None:
        cgroup = self.cgroup(container_id)
        self.cgroups.create(self.controller, cgroup)
        cpus = container_resources(config).scalar("cpus")
        for control, value in cpu_controls(cpus, self.enable_cfs).items():
            self.cgroups.write(self.controller, cgroup, control, value)
        self._cpus[container_id] = cpus
        procs = [self.procs_file(container_id)]
        if self.separate_cpuacct:
            self.cgroups.create(CPUACCT, cgroup)
            procs.append(self.cgroups.path(CPUACCT, f"{cgroup}/cgroup.procs"))
        return LaunchInfo(cgroup_procs=tuple(procs))

    async def prepare_task(self, container_id: str, task: NestedTask) -> LaunchInfo | None:
        """The task's own cpu (and cpuacct) cgroup in its container's: its shares weigh it
        against its siblings; with ``share_cgroups`` false and CFS on, a quota of its own."""
        cpus = task.resources.scalar("cpus")
        if task.grow:
            self._grow(container_id, cpus)
        cgroup = self.task_cgroup(container_id, task.task_id)
        self.cgroups.create(self.controller, cgroup)
        controls = cpu_controls(cpus, self.enable_cfs and not task.share_cgroups)
        for control, value in controls.items():
            self.cgroups.write(self.controller, cgroup, control, value)
        controllers = [self.controller]
        if self.separate_cpuacct:
            self.cgroups.create(CPUACCT, cgroup)
            controllers.append(CPUACCT)
        procs = tuple(self.cgroups.path(c, f"{cgroup}/cgroup.procs") for c in controllers)
        for path in procs:
            hand_over(path, task.owner)
        return LaunchInfo(cgroup_procs=procs)

    def _grow(self, container_id: str, cpus: float) -> None:
        """A later group's task: the container's shares (and quota) grow by its cpus."""
        cgroup = self.cgroup(container_id)
        total = self._cpus_limit(container_id) + cpus
        self._cpus[container_id] = total
        for control, value in cpu_controls(total, self.enable_cfs).items():
            self.cgroups.write(self.controller, cgroup, control, value)

    async def recover(self, known: Collection[str]) -> None:
        await super().recover(known)
        if self.separate_cpuacct:
            for name in self.cgroups.children(CPUACCT, self.root):
                if name not in known:
                    await remove_cgroup(self.cgroups, CPUACCT, self.cgroup(name))

    async def usage(self, container_id: str) -> mesos_pb2.ResourceStatistics | None:
        cgroup = self.cgroup(container_id)
        try:
            times = flat_keyed(self.cgroups.read(self.stats_controller, cgroup, "cpuacct.stat"))
            procs = self.cgroups.read(self.stats_controller, cgroup, "cgroup.procs").split()
        except FileNotFoundError:
            return None  # not ours, or already cleaned up
        out = mesos_pb2.ResourceStatistics(
            cpus_user_time_secs=times.get("user", 0) / USER_HZ,
            cpus_system_time_secs=times.get("system", 0) / USER_HZ,
            cpus_limit=self._cpus_limit(container_id),
            processes=len(procs),
        )
        if self.enable_cfs:
            stat = flat_keyed(self.cgroups.read(self.controller, cgroup, "cpu.stat"))
            out.cpus_nr_periods = stat.get("nr_periods", 0)
            out.cpus_nr_throttled = stat.get("nr_throttled", 0)
            out.cpus_throttled_time_secs = stat.get("throttled_time", 0) / 1e9
        return out

    def _cpus_limit(self, container_id: str) -> float:
        cpus = self._cpus.get(container_id)
        if cpus is not None:
            return cpus
        cgroup = self.cgroup(container_id)
        if self.enable_cfs:
            quota = int(self.cgroups.read(self.controller, cgroup, "cpu.cfs_quota_us"))
            period = int(self.cgroups.read(self.controller, cgroup, "cpu.cfs_period_us"))
            if quota > 0 and period > 0:
                return quota / period
        shares = int(self.cgroups.read(self.controller, cgroup, "cpu.shares"))
        return round(shares / CPU_SHARES_PER_CPU, 2)

    async def cleanup(self, container_id: str) -> None:
        self._cpus.pop(container_id, None)
        await super().cleanup(container_id)
        if self.separate_cpuacct:
            # Its processes are those of the cpu cgroup, killed already; a stray is killed too.
            await remove_cgroup(self.cgroups, CPUACCT, self.cgroup(container_id))


@dataclass(frozen=True)
class CpuConfig:
    enable_cfs: bool = False  # --cgroups_enable_cfs


def create(config: CpuConfig, host: Host) -> CpuIsolator:
    return CpuIsolator(host.backend(), host.cgroups_root, config.enable_cfs)
