"""The tasks of a task group as nested containers of their executor's container.

The default executor (``executors/default.py``) starts each task of a group as a child process;
what isolates that task is prepared here, by the agent, before the group is sent to it:

- cgroups of its own nested in the container's (``<root>/<container>/task-<task id>``, by the
  cgroups isolators' ``prepare_task``): usage per task, cpu shares among its siblings, and with
  ``LinuxInfo.share_cgroups`` false limits of its own; the container's limits grow by the tasks
  of every later group. They go with the container (its cleanup removes them).
- a root filesystem when the task gives an image (``ContainerInfo.mesos.image``): provisioned
  under its container's id (so recovery and cleanup treat it as the container's), entered
  through ``executors/rootfs.py`` as a command task's is, its sandbox bound at the
  ``--sandbox_directory`` mount point.

What the executor needs goes with each task of the LAUNCH_GROUP event, as the variable
``MESOS_TASK_LAUNCH_INFO`` of its command (``task_launch``), which the agent always sets itself
(a framework's variable of that name is dropped): ``cgroup_procs`` to join before the exec, and
the rootfs launch for a task with an image.

Why the agent makes the cgroups and not the executor: the agent knows the group and its
resources when it receives it, writes the limits, and cleans up with the container; the executor
only writes its task's pid into the ``cgroup.procs`` files it is handed (chowned to its user when
it does not run as root; the limit files beside them stay root's). An executor that made its
own cgroups would need write access to its container's cgroup directories, limits included: it
could raise its own container's limits, which is the escape we must not allow.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from agent_runtime.containerizer.capabilities import DOCKER_DEFAULT
from agent_runtime.containerizer.isolator import Isolator, NestedTask
from agent_runtime.containerizer.provisioning import Provisioner, image_name, runtime
from agent_runtime.errors import LaunchError, RuntimeErrorBase
from agent_runtime.proto import mesos_pb2
from agent_runtime.resources import Resources

TASK_LAUNCH_INFO = "MESOS_TASK_LAUNCH_INFO"


@runtime_checkable
class TaskGroupHost(Protocol):
    """A containerizer that prepares a task group's tasks as nested containers."""

    async def prepare_tasks(self, container_id: str, tasks: Sequence[mesos_pb2.TaskInfo]
                            ) -> None:
        """Prepare tasks of a later group of the container (LaunchError: they cannot run)."""

    def task_launch(self, container_id: str, task_id: str) -> str | None:
        """What the executor needs to start the task (JSON), taken once; None: nothing."""


def share_cgroups(task: mesos_pb2.TaskInfo) -> bool:
    linux = task.container.linux_info
    return not linux.HasField("share_cgroups") or linux.share_cgroups


def task_image(task: mesos_pb2.TaskInfo) -> mesos_pb2.Image | None:
    container = task.container
    if container.type == mesos_pb2.ContainerInfo.MESOS and container.mesos.HasField("image"):
        return container.mesos.image
    return None


def with_launch_info(task: mesos_pb2.TaskInfo, launch: str | None) -> None:
    """Set the agent's word on ``task`` (a copy going to the executor); a variable of that name
    the framework gave is dropped whether or not there is one to set."""
    variables = task.command.environment.variables
    kept = [v for v in variables if v.name != TASK_LAUNCH_INFO]
    if len(kept) != len(variables):
        del variables[:]
        variables.extend(kept)
    if launch is not None:
        variables.add(name=TASK_LAUNCH_INFO, value=launch)


class TaskContainers:
    """The nested containers of every container that runs task groups."""

    def __init__(self, isolators: Sequence[Isolator], provisioner: Provisioner | None) -> None:
        self.isolators = tuple(isolators)
        self.provisioner = provisioner
        # A container's executor user (None: root) and sandbox, once it is launched: later
        # groups wait for it, so nothing is nested in a container not yet made.
        self._ready: dict[str, asyncio.Future[tuple[int | None, str, dict[str, Any]]]] = {}
        self._launches: dict[tuple[str, str], str] = {}

    def _future(self, container_id: str) -> asyncio.Future[tuple[int | None, str,
                                                                 dict[str, Any]]]:
        future = self._ready.get(container_id)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._ready[container_id] = future
        return future

    def launched(self, container_id: str, owner: int | None, sandbox: str,
                 security: dict[str, Any]) -> None:
        """The container exists (launched, or adopted after a restart)."""
        future = self._future(container_id)
        if not future.done():
            future.set_result((owner, sandbox, security))

    def forget(self, container_id: str) -> None:
        """The container is gone: a group still waiting for it fails."""
        future = self._ready.pop(container_id, None)
        if future is not None and not future.done():
            future.set_exception(LaunchError(f"Container {container_id} is gone"))
            future.exception()  # retrieved: nobody may be waiting
        for key in [key for key in self._launches if key[0] == container_id]:
            del self._launches[key]

    async def prepare_later(self, container_id: str, tasks: Sequence[mesos_pb2.TaskInfo]
                            ) -> None:
        """A group for a container launched (or being launched) before it."""
        owner, sandbox, security = await self._future(container_id)
        await self.prepare(container_id, tasks, owner, sandbox, security, grow=True)

    async def prepare(self, container_id: str, tasks: Sequence[mesos_pb2.TaskInfo],
                      owner: int | None, sandbox: str, security: dict[str, Any],
                      grow: bool) -> None:
        for task in tasks:
            task_id = task.task_id.value
            nested = NestedTask(
                task_id, Resources.from_proto(task.resources), share_cgroups(task), owner,
                grow, os.path.join(sandbox, "tasks", task_id), task.command)
            image = task_image(task)
            if image is not None:
                nested = await self._provision(container_id, nested, image_name(image))
            launch: dict[str, Any] = {}
            procs: list[str] = []
            for isolator in self.isolators:
                try:
                    info = await isolator.prepare_task(container_id, nested)
                except OSError as exc:
                    raise LaunchError(f"Failed to prepare task {task_id}: {exc}") from exc
                if info is not None:
                    procs.extend(info.cgroup_procs)
                    launch.update(info.rootfs_launch)
            if nested.rootfs is not None:
                if "rootfs" not in launch:
                    raise LaunchError("A task's image needs --isolation to include "
                                      "filesystem/linux")
                task_security = dict(security)
                task_security.setdefault("bounding", sorted(task_security.get("effective")
                                                            or DOCKER_DEFAULT))
                launch["security"] = task_security
            if procs:
                launch["cgroup_procs"] = procs
            if launch:
                self._launches[(container_id, task_id)] = json.dumps(launch)

    async def _provision(self, container_id: str, nested: NestedTask, name: str) -> NestedTask:
        if self.provisioner is None:
            raise LaunchError(f"Cannot run image {name!r}: this agent runs without "
                              "--image_providers=docker")
        try:
            # Under the container's id: its rootfses are the container's to recover and remove.
            provisioned = await self.provisioner.provision(container_id, name)
        except RuntimeErrorBase as exc:
            raise LaunchError(f"Failed to provision image {name!r}: {exc}") from exc
        return dataclasses.replace(nested, rootfs=provisioned.rootfs,
                                   image=runtime(provisioned.config))

    def take(self, container_id: str, task_id: str) -> str | None:
        return self._launches.pop((container_id, task_id), None)


__all__ = ["TASK_LAUNCH_INFO", "TaskContainers", "TaskGroupHost", "with_launch_info"]
