"""``namespaces/ipc``: each container with an IPC namespace of its own (System V objects and
POSIX message queues); ``LinuxInfo.ipc_mode=SHARE_PARENT`` keeps the agent's, as in Mesos. An
image container's /dev/shm is already its own tmpfs (executors/rootfs.py)."""

from __future__ import annotations

from agent_runtime.containerizer.containerizer import ContainerConfig
from agent_runtime.containerizer.isolator import Isolator, LaunchInfo
from agent_runtime.proto import mesos_pb2

IPC_NAMESPACE = LaunchInfo(namespaces=frozenset({"ipc"}))


class IpcNamespaceIsolator(Isolator):
    async def prepare(self, container_id: str, config: ContainerConfig) -> LaunchInfo | None:
        if config.container_info.linux_info.ipc_mode == mesos_pb2.LinuxInfo.SHARE_PARENT:
            return None
        return IPC_NAMESPACE

