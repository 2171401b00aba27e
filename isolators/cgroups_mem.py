"""``cgroups/mem``: memory.limit_in_bytes from ``mem``, and an OOM watch.

The watch is the kernel's OOM notification (an eventfd registered in ``cgroup.event_control``):
no polling. Unlike Mesos we also set ``oom_kill_disable``: a container over its limit is paused
by the kernel instead of losing one process at random, so the command executor cannot race us
with its own "terminated by SIGKILL" TASK_FAILED; the containerizer then destroys it whole and
the agent reports REASON_CONTAINER_LIMITATION_MEMORY.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

from agent_runtime.agent.config import AgentConfig
from agent_runtime.containerizer.cgroups import Cgroups
from agent_runtime.containerizer.containerizer import ContainerConfig
from agent_runtime.containerizer.isolator import LaunchInfo, Limitation, container_resources
from agent_runtime.proto import mesos_pb2

from .cgroup import CgroupIsolator

MB = 1024 * 1024
MIN_MEMORY_MB = 32


def memory_limit_bytes(mem_mb: float) -> int:
    return max(MIN_MEMORY_MB, int(mem_mb)) * MB


class _Watch:
    def __init__(self, eventfd: int, control_fd: int, future: asyncio.Future[Limitation]) -> None:
        self.eventfd = eventfd
        self.control_fd = control_fd
        self.future = future


class MemIsolator(CgroupIsolator):
    controller = "memory"

    def __init__(self, cgroups: Cgroups, root: str) -> None:
        super().__init__(cgroups, root)
        self._watches: dict[str, _Watch] = {}

    async def prepare(self, container_id: str, config: ContainerConfig) -> LaunchInfo | None:
        cgroup = self.cgroup(container_id)
        path = self.cgroups.create(self.controller, cgroup)
        limit = memory_limit_bytes(container_resources(config).scalar("mem"))
        self.cgroups.write(self.controller, cgroup, "memory.limit_in_bytes", str(limit))
        self.cgroups.write(self.controller, cgroup, "memory.oom_control", "1")
        self._arm(container_id, path, limit)
        return LaunchInfo(cgroup_procs=(self.procs_file(container_id),))

    def _arm(self, container_id: str, path: str, limit: int) -> None:
        loop = asyncio.get_running_loop()
        control_fd = os.open(os.path.join(path, "memory.oom_control"), os.O_RDONLY | os.O_CLOEXEC)
        eventfd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        watch = _Watch(eventfd, control_fd, loop.create_future())
        self._watches[container_id] = watch
        self.cgroups.write(self.controller, self.cgroup(container_id), "cgroup.event_control",
                           f"{eventfd} {control_fd}")

        def notified() -> None:
            with contextlib.suppress(BlockingIOError):
                os.eventfd_read(eventfd)
            if watch.future.done() or not os.path.isdir(path):
                return  # the cgroup going away also signals the eventfd
            watch.future.set_result(self._limitation(container_id, limit))

        loop.add_reader(eventfd, notified)

    def _limitation(self, container_id: str, limit: int) -> Limitation:
        cgroup = self.cgroup(container_id)
        try:
            used = int(self.cgroups.read(self.controller, cgroup, "memory.max_usage_in_bytes"))
        except (OSError, ValueError):
            used = limit
        return Limitation(
            mesos_pb2.TaskStatus.REASON_CONTAINER_LIMITATION_MEMORY,
            f"Memory limit exceeded: Requested: {limit // MB}MB "
            f"Maximum Used: {used // MB}MB",
        )

    def watch(self, container_id: str) -> asyncio.Future[Limitation] | None:
        watch = self._watches.get(container_id)
        return None if watch is None else watch.future

    async def cleanup(self, container_id: str) -> None:
        watch = self._watches.pop(container_id, None)
        if watch is not None:
            asyncio.get_running_loop().remove_reader(watch.eventfd)
            os.close(watch.eventfd)
            os.close(watch.control_fd)
            if not watch.future.done():
                watch.future.cancel()
        await super().cleanup(container_id)


def create(config: AgentConfig, cgroups: Cgroups) -> MemIsolator:
    return MemIsolator(cgroups, config.cgroups_root)
