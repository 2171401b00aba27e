"""``cgroups/mem``: memory.limit_in_bytes from ``mem``, and an OOM watch.

The watch is the kernel's OOM notification (an eventfd registered in ``cgroup.event_control``):
no polling. Unlike Mesos we also set ``oom_kill_disable``: a container over its limit is paused
by the kernel instead of losing one process at random, so the command executor cannot race us
with its own "terminated by SIGKILL" TASK_FAILED; the containerizer then destroys it whole and
the agent reports REASON_CONTAINER_LIMITATION_MEMORY.

On cgroup v2 neither file exists: the watch is inotify on ``memory.events``, whose ``oom_kill``
counter going up is the OOM, and ``memory.oom.group`` makes the kernel kill the whole container
(v2 cannot pause it). The watch and the executor's exit then race: the agent usually learns of
the limitation first, but a command executor may report its task killed before. The kind of
watch is picked by the files the cgroup has, so the backend seam stays the one place that knows
the version.

Usage is Mesos's: ``memory.usage_in_bytes`` is the total, ``memory.stat``'s hierarchical
``total_*`` counters the detail (rss also as anon, cache also as file, as Mesos keeps both).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
from collections.abc import Collection

from agent_runtime.containerizer.cgroups import Cgroups, flat_keyed
from agent_runtime.containerizer.containerizer import ContainerConfig
from agent_runtime.containerizer.isolation import Host
from agent_runtime.containerizer.isolator import (
    LaunchInfo,
    Limitation,
    NestedTask,
    container_resources,
)
from agent_runtime.proto import mesos_pb2

from .cgroup import CgroupIsolator, hand_over

MB = 1024 * 1024
MIN_MEMORY_MB = 32
# A limit this high is "none": v1 shows PAGE_COUNTER_MAX pages, v2's "max" is translated to it.
UNLIMITED = 1 << 62
# memory.stat's hierarchical counters and the ResourceStatistics fields they fill.
MEMORY_STAT_FIELDS = {
    "total_rss": ("mem_rss_bytes", "mem_anon_bytes"),
    "total_cache": ("mem_cache_bytes", "mem_file_bytes"),
    "total_mapped_file": ("mem_mapped_file_bytes",),
    "total_swap": ("mem_swap_bytes",),
    "total_unevictable": ("mem_unevictable_bytes",),
}
IN_MODIFY = 0x2


def memory_limit_bytes(mem_mb: float) -> int:
    return max(MIN_MEMORY_MB, int(mem_mb)) * MB


class _Watch:
    def __init__(self, reader: int, fds: tuple[int, ...], future: asyncio.Future[Limitation]
                 ) -> None:
        self.reader = reader  # the fd the event loop watches
        self.fds = fds  # every fd to close, the reader included
        self.future = future


def _inotify(path: str) -> int:
    """A non-blocking inotify fd reporting writes to ``path`` (no inotify in the standard
    library, and a package for two calls is not worth it)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = int(libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC))
    if fd < 0:
        raise OSError(ctypes.get_errno(), f"inotify_init1: {os.strerror(ctypes.get_errno())}")
    if libc.inotify_add_watch(fd, os.fsencode(path), IN_MODIFY) < 0:
        errno = ctypes.get_errno()
        os.close(fd)
        raise OSError(errno, f"inotify_add_watch {path}: {os.strerror(errno)}")
    return fd


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
        if os.path.exists(os.path.join(path, "memory.oom_control")):
            self.cgroups.write(self.controller, cgroup, "memory.oom_control", "1")
            self._arm(container_id, path, limit)
        else:
            self.cgroups.write(self.controller, cgroup, "memory.oom.group", "1")
            self._arm_v2(container_id, path, limit)
        return LaunchInfo(cgroup_procs=(self.procs_file(container_id),))

    async def prepare_task(self, container_id: str, task: NestedTask) -> LaunchInfo | None:
        """The task's own memory cgroup in its container's (usage of its own); a limit of its
        own with ``share_cgroups`` false. The kernel's OOM killer stays on in it: a task over
        its own limit is killed there, and its group's policy follows."""
        parent = self.cgroup(container_id)
        mem = task.resources.scalar("mem")
        if task.grow:
            limit = int(self.cgroups.read(self.controller, parent, "memory.limit_in_bytes"))
            if limit < UNLIMITED:
                self.cgroups.write(self.controller, parent, "memory.limit_in_bytes",
                                   str(limit + int(mem) * MB))
        path = self.cgroups.path(self.controller, parent)
        hierarchy = os.path.join(path, "memory.use_hierarchy")
        if os.path.exists(hierarchy) and self.cgroups.read(
                self.controller, parent, "memory.use_hierarchy").strip() != "1":
            # A child's usage would not count against the container's limit: the task stays
            # in the container's cgroup rather than escape it.
            return None
        cgroup = self.task_cgroup(container_id, task.task_id)
        self.cgroups.create(self.controller, cgroup)
        if not task.share_cgroups:
            self.cgroups.write(self.controller, cgroup, "memory.limit_in_bytes",
                               str(memory_limit_bytes(mem)))
            if os.path.exists(os.path.join(path, "memory.oom_control")):
                # A v1 child inherits the container's oom_kill_disable: it would stop at its
                # own limit for good, with no watch on it.
                self.cgroups.write(self.controller, cgroup, "memory.oom_control", "0")
        procs = self.cgroups.path(self.controller, f"{cgroup}/cgroup.procs")
        hand_over(procs, task.owner)
        return LaunchInfo(cgroup_procs=(procs,))

    async def recover(self, known: Collection[str]) -> None:
        """Unknown containers go; known ones get their OOM watch back. (Without it, a recovered
        container reaching its limit would stay stopped there for good: the kernel's OOM
        killer is off for it, v1's ``oom_control``, so that the agent can report the OOM.)"""
        await super().recover(known)
        for container_id in self.cgroups.children(self.controller, self.root):
            if container_id not in known or container_id in self._watches:
                continue
            cgroup = self.cgroup(container_id)
            path = self.cgroups.path(self.controller, cgroup)
            try:
                limit = int(self.cgroups.read(self.controller, cgroup, "memory.limit_in_bytes"))
            except (OSError, ValueError):
                continue
            if os.path.exists(os.path.join(path, "memory.oom_control")):
                self._arm(container_id, path, limit)
            else:
                self._arm_v2(container_id, path, limit)

    def _arm(self, container_id: str, path: str, limit: int) -> None:
        loop = asyncio.get_running_loop()
        control_fd = os.open(os.path.join(path, "memory.oom_control"), os.O_RDONLY | os.O_CLOEXEC)
        eventfd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        watch = _Watch(eventfd, (eventfd, control_fd), loop.create_future())
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

    def _arm_v2(self, container_id: str, path: str, limit: int) -> None:
        """v2: the kernel notifies a write to ``memory.events`` whenever a counter moves; the
        OOM is ``oom_kill`` above what it was when armed."""
        loop = asyncio.get_running_loop()
        cgroup = self.cgroup(container_id)

        def oom_kills() -> int:
            return flat_keyed(self.cgroups.read(self.controller, cgroup, "memory.events")
                              ).get("oom_kill", 0)

        baseline = oom_kills()
        fd = _inotify(os.path.join(path, "memory.events"))
        watch = _Watch(fd, (fd,), loop.create_future())
        self._watches[container_id] = watch

        def notified() -> None:
            with contextlib.suppress(BlockingIOError):
                while os.read(fd, 4096):  # drain: one check covers every queued event
                    pass
            if watch.future.done():
                return
            try:
                killed = oom_kills() > baseline
            except OSError:
                return  # the cgroup is gone: cleanup, not an OOM
            if killed:
                watch.future.set_result(self._limitation(container_id, limit))

        loop.add_reader(fd, notified)

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

    async def usage(self, container_id: str) -> mesos_pb2.ResourceStatistics | None:
        cgroup = self.cgroup(container_id)
        read = self.cgroups.read
        try:
            out = mesos_pb2.ResourceStatistics(
                mem_total_bytes=int(read(self.controller, cgroup, "memory.usage_in_bytes")))
            limit = int(read(self.controller, cgroup, "memory.limit_in_bytes"))
            soft = int(read(self.controller, cgroup, "memory.soft_limit_in_bytes"))
            stat = flat_keyed(read(self.controller, cgroup, "memory.stat"))
        except FileNotFoundError:
            return None  # not ours, or already cleaned up
        if limit < UNLIMITED:
            out.mem_limit_bytes = limit
        if 0 < soft < UNLIMITED:
            out.mem_soft_limit_bytes = soft
        for key, fields in MEMORY_STAT_FIELDS.items():
            if key in stat:
                for name in fields:
                    setattr(out, name, stat[key])
        return out

    async def cleanup(self, container_id: str) -> None:
        watch = self._watches.pop(container_id, None)
        if watch is not None:
            asyncio.get_running_loop().remove_reader(watch.reader)
            for fd in watch.fds:
                os.close(fd)
            if not watch.future.done():
                watch.future.cancel()
        await super().cleanup(container_id)


def create(host: Host) -> MemIsolator:
    return MemIsolator(host.backend(), host.cgroups_root)
