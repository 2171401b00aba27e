"""``filesystem/linux``: a mount namespace per container, and the image's root filesystem.

Every container gets its own mount namespace (propagation slave: host mounts still reach it,
its own do not leak out). A container with an image gets the rootfs the provisioner made: the
executor of a command task stays on the host's filesystem and its task enters the rootfs
through ``executors/rootfs.py``, with the sandbox bound at ``--sandbox_directory``
(``/mnt/mesos/sandbox``) and ``MESOS_SANDBOX`` pointing there, as in Mesos.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent_runtime.containerizer.containerizer import ContainerConfig
from agent_runtime.containerizer.isolator import Isolator, LaunchInfo, NestedTask

MOUNT_NAMESPACE = frozenset({"mount"})


class LinuxFilesystemIsolator(Isolator):
    def __init__(self, sandbox_directory: str) -> None:
        self.sandbox_directory = sandbox_directory

    async def prepare(self, container_id: str, config: ContainerConfig) -> LaunchInfo:
        if config.rootfs is None:
            return LaunchInfo(namespaces=MOUNT_NAMESPACE)
        return LaunchInfo(namespaces=MOUNT_NAMESPACE, rootfs_launch={
            "rootfs": config.rootfs, "sandbox": config.directory,
            "mount_point": self.sandbox_directory,
        })

    async def prepare_task(self, container_id: str, task: NestedTask) -> LaunchInfo | None:
        """A group task with an image of its own: its sandbox is bound in its rootfs."""
        if task.rootfs is None:
            return None
        return LaunchInfo(rootfs_launch={"rootfs": task.rootfs, "sandbox": task.sandbox,
                                         "mount_point": self.sandbox_directory})


@dataclass(frozen=True)
class FilesystemConfig:
    sandbox_directory: str = "/mnt/mesos/sandbox"  # --sandbox_directory


def create(config: FilesystemConfig) -> LinuxFilesystemIsolator:
    return LinuxFilesystemIsolator(config.sandbox_directory)
