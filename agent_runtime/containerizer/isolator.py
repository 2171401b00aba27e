"""What an isolator is: one module per ``--isolation`` name, behind this Protocol (STYLE rule 1).

Isolators return data; only the launcher forks. The Mesos containerizer drives them::

    recover(known)                          once, at agent start
    prepare(id, config) -> LaunchInfo        in --isolation order, before the launch
    prepare_task(id, task) -> LaunchInfo     a task of its task group: a nested container
    isolate(id, pid)                         the executor runs (already inside its cgroups)
    watch(id) -> Future[Limitation]          resolves when the container breaks a limit
    update / usage / status                  while it runs
    cleanup(id)                              in reverse order, idempotent

Every method has a no-op default, so an isolator writes only what it does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from agent_runtime.containerizer.limitation import Limitation
from agent_runtime.proto import mesos_pb2
from agent_runtime.resources import Resources

if TYPE_CHECKING:
    from agent_runtime.containerizer.containerizer import ContainerConfig, ImageRuntime


@dataclass(frozen=True)
class LaunchInfo:
    """What an isolator adds to the launch; the containerizer merges these in order."""

    environment: Mapping[str, str] = field(default_factory=dict)
    # ``cgroup.procs`` files the launcher writes the executor's pid into before it execs.
    cgroup_procs: tuple[str, ...] = ()
    # New namespaces for the container: "mount", "pid", "ipc", "uts".
    namespaces: frozenset[str] = frozenset()
    # The container's hostname in its own UTS namespace (namespaces/uts).
    hostname: str | None = None
    # How the task is confined (executors/security.py: bounding, effective, no_new_privs,
    # seccomp), merged key by key: the task of an image container gets it through
    # executors/rootfs.py, a command executor without an image shares it with its task.
    security: Mapping[str, Any] = field(default_factory=dict)
    # For a container with an image: what ``executors/rootfs.py`` needs to enter it (rootfs,
    # sandbox and mount point from filesystem/linux; argv, environment, working_dir and user
    # from docker/runtime), merged key by key.
    rootfs_launch: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NestedTask:
    """A task of a task group, to run in a nested container of its executor's container."""

    task_id: str
    resources: Resources
    # ContainerInfo.LinuxInfo.share_cgroups (Mesos's default true): the group is limited as a
    # sum by the container; false gives the task limits of its own.
    share_cgroups: bool = True
    # The uid the executor runs as (None: root): it moves the task into its cgroups.
    owner: int | None = None
    # The task came after its container was launched: the container's limits grow by it.
    grow: bool = False
    # Its own sandbox on the host (``<executor sandbox>/tasks/<task id>``).
    sandbox: str = ""
    # A task with an image of its own: its command, the provisioned rootfs and what the image
    # says to run (filesystem/linux and docker/runtime turn them into its rootfs launch).
    command: mesos_pb2.CommandInfo | None = None
    rootfs: str | None = None
    image: ImageRuntime | None = None


class Isolator(Protocol):
    async def recover(self, known: Collection[str]) -> None:
        """Keep what belongs to ``known`` containers, remove everything else of ours."""
        return None

    async def prepare(self, container_id: str, config: ContainerConfig) -> LaunchInfo | None:
        """Set the container up before its executor exists; return what the launch needs."""
        return None

    async def prepare_task(self, container_id: str, task: NestedTask) -> LaunchInfo | None:
        """Set up a task of the running container's task group (its own cgroups, nested in
        the container's); the ``cgroup_procs`` returned are for the executor to move it into.
        Its cleanup is the container's."""
        return None

    async def isolate(self, container_id: str, pid: int) -> None:
        """The executor ``pid`` exists."""
        return None

    def watch(self, container_id: str) -> asyncio.Future[Limitation] | None:
        """A future that resolves when the container breaks a limit, or None: never."""
        return None

    async def update(self, container_id: str, resources: Resources) -> None:
        """The container's resources changed."""
        return None

    async def usage(self, container_id: str) -> mesos_pb2.ResourceStatistics | None:
        return None

    async def status(self, container_id: str) -> mesos_pb2.ContainerStatus | None:
        return None

    async def cleanup(self, container_id: str) -> None:
        """Remove what ``prepare`` made; idempotent (it may run again after a crash)."""
        return None


def executor_resources(info: mesos_pb2.ExecutorInfo, command_executor: bool,
                       tasks: Iterable[mesos_pb2.TaskInfo | mesos_pb2.Task]) -> Resources:
    """An executor's and its tasks' resources together: what its container is limited to (and
    what the agent reports as allocated to it, Mesos's ``allocatedResources()``).

    The command executor's ExecutorInfo already carries its task's resources (the agent adds the
    executor's own share to them); a custom executor's tasks come on top of its own.
    """
    total = Resources.from_proto(info.resources)
    if not command_executor:
        for task in tasks:
            total = total + Resources.from_proto(task.resources)
    return total


def container_resources(config: ContainerConfig) -> Resources:
    """What a container being launched is limited to (see :func:`executor_resources`)."""
    return executor_resources(config.executor_info, config.command_executor, config.tasks)


# Limitation re-exported for the isolators.
__all__ = ["Isolator", "LaunchInfo", "Limitation", "NestedTask"]
