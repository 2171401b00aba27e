"""``cgroups/pids``: every container in a pids cgroup, for accounting and an optional cap.

Mesos only puts the container in the cgroup and sets no ``pids.max``. We do the same unless the
executor or its tasks ask for a scalar resource named ``pids`` (e.g. ``--resources=pids:4096``
on the agent and ``pids:100`` in the task): that number becomes ``pids.max``. Mesos has no such
resource; we chose a plain scalar because it travels through offers, DRF and the state
endpoints like any custom resource, with no new protocol field. Without it ``pids.max`` stays
``max``.

Usage fills ResourceStatistics ``processes`` (the pids in ``cgroup.procs``) and ``threads``
(``pids.current``, which counts every task, i.e. thread, in the cgroup).
"""

from __future__ import annotations

import time

from agent_runtime.containerizer.containerizer import ContainerConfig
from agent_runtime.containerizer.isolation import Host
from agent_runtime.containerizer.isolator import LaunchInfo, container_resources
from agent_runtime.proto import mesos_pb2
from agent_runtime.resources import Resources

from .cgroup import CgroupIsolator

PIDS_RESOURCE = "pids"
UNLIMITED = "max"


def pids_max(resources: Resources) -> str:
    """The ``pids.max`` value for ``resources``: their ``pids`` scalar, else unlimited."""
    limit = int(resources.scalar(PIDS_RESOURCE))
    return str(limit) if limit > 0 else UNLIMITED


class PidsIsolator(CgroupIsolator):
    controller = "pids"

    async def prepare(self, container_id: str, config: ContainerConfig) -> LaunchInfo | None:
        cgroup = self.cgroup(container_id)
        self.cgroups.create(self.controller, cgroup)
        self.cgroups.write(self.controller, cgroup, "pids.max",
                           pids_max(container_resources(config)))
        return LaunchInfo(cgroup_procs=(self.procs_file(container_id),))

    async def update(self, container_id: str, resources: Resources) -> None:
        # Lowering pids.max below pids.current is allowed: the kernel only refuses new forks.
        self.cgroups.write(self.controller, self.cgroup(container_id), "pids.max",
                           pids_max(resources))

    async def usage(self, container_id: str) -> mesos_pb2.ResourceStatistics | None:
        cgroup = self.cgroup(container_id)
        try:
            threads = int(self.cgroups.read(self.controller, cgroup, "pids.current"))
        except FileNotFoundError:
            return None  # already cleaned up
        return mesos_pb2.ResourceStatistics(
            timestamp=time.time(),
            processes=len(self.cgroups.procs(self.controller, cgroup)),
            threads=threads,
        )


def create(host: Host) -> PidsIsolator:
    return PidsIsolator(host.backend(), host.cgroups_root)
