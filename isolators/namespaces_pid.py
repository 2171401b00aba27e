"""``namespaces/pid``: each container in a pid namespace of its own.

The executor is pid 1 there, so the container's processes see only each other and die together
when it does (the kernel kills a pid namespace whose init exits); with ``filesystem/linux`` the
container also gets a /proc that shows that namespace. Like Mesos, it needs ``filesystem/linux``
(a new /proc needs a mount namespace): ``isolation.parse`` refuses it alone.
"""

from __future__ import annotations

from agent_runtime.containerizer.containerizer import ContainerConfig
from agent_runtime.containerizer.isolator import Isolator, LaunchInfo

PID_NAMESPACE = LaunchInfo(namespaces=frozenset({"pid"}))


class PidNamespaceIsolator(Isolator):
    async def prepare(self, container_id: str, config: ContainerConfig) -> LaunchInfo:
        return PID_NAMESPACE

