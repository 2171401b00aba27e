"""``namespaces/uts``: each container with a UTS namespace of its own, its hostname
``ContainerInfo.hostname`` or else the container's id (cut to the kernel's 64 bytes), so a task
that changes it changes only its own."""

from __future__ import annotations

from agent_runtime.containerizer.containerizer import ContainerConfig
from agent_runtime.containerizer.isolator import Isolator, LaunchInfo
from agent_runtime.errors import LaunchError

UTS = frozenset({"uts"})
HOST_NAME_MAX = 64


class UtsNamespaceIsolator(Isolator):
    async def prepare(self, container_id: str, config: ContainerConfig) -> LaunchInfo:
        hostname = config.container_info.hostname or container_id
        if len(hostname.encode()) > HOST_NAME_MAX or "\0" in hostname:
            if config.container_info.hostname:
                raise LaunchError(f"ContainerInfo.hostname {hostname!r} is not a valid "
                                  f"hostname (at most {HOST_NAME_MAX} bytes)")
            hostname = hostname.encode()[:HOST_NAME_MAX].decode(errors="ignore")
        return LaunchInfo(namespaces=UTS, hostname=hostname)

