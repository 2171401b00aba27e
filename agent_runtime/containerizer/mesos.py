"""The Mesos containerizer: executors as host processes, isolated by the isolators
``--isolation`` names (``isolation.py``), with a root filesystem from an image when asked.

Launch: the provisioner makes the image's rootfs (``provisioning.py``), every isolator's
``prepare`` runs in order, and the merged result is spawned: a command executor is forked by
the fork server (``forkserver.py``), anything else started by the posix launcher; either way
the executor joins its cgroups and namespaces before its first instruction. Then ``isolate``
and ``watch``: a limitation destroys the container and is kept for the agent to report.
Cleanup runs the isolators in reverse, then removes the rootfs. Each container moves through
the states of ``container_state.py`` (PROVISIONING, PREPARING, RUNNING, DESTROYING, TERMINATED).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib.util
import json
import logging
import os
import pwd
import sys
import time
from collections.abc import Collection, Sequence
from typing import Any

from agent_runtime.containerizer import posix_usage
from agent_runtime.containerizer.capabilities import DOCKER_DEFAULT
from agent_runtime.containerizer.container_state import (
    DESTROYING,
    PREPARING,
    PROVISIONING,
    RUNNING,
    TERMINATED,
    ContainerState,
    transition,
)
from agent_runtime.containerizer.containerizer import ContainerConfig
from agent_runtime.containerizer.forkserver import ForkServer
from agent_runtime.containerizer.isolator import Isolator, LaunchInfo, Limitation
from agent_runtime.containerizer.launcher import PosixLauncher, Process
from agent_runtime.containerizer.mesos_sessions import SessionEntry
from agent_runtime.containerizer.mesos_sessions import launch as launch_session
from agent_runtime.containerizer.provisioning import Provisioner, image_name, image_of, runtime
from agent_runtime.containerizer.sessions import Session, SessionRequest
from agent_runtime.containerizer.task_containers import TASK_LAUNCH_INFO, TaskContainers
from agent_runtime.errors import Conflict, LaunchError, NotFound, RuntimeErrorBase
from agent_runtime.proto import mesos_pb2

log = logging.getLogger(__name__)

# Found through the import system: the `executors/` folder is mapped to agent_runtime.executors.
_COMMAND_SPEC = importlib.util.find_spec("agent_runtime.executors.command")
assert _COMMAND_SPEC is not None and _COMMAND_SPEC.origin is not None
COMMAND_EXECUTOR: str = _COMMAND_SPEC.origin
# The rootfs entry helper (executors/rootfs.py), and how a command executor is told to use it.
ROOTFS_STUB = ("import sys; sys.path[0] = sys.argv[1]; from executors import rootfs; "
               "sys.exit(rootfs.main())")
# Imported rather than run as a script so its bytecode is cached; `-S` skips site-packages (the
# executor needs the standard library only), which keeps its start-up, i.e. launch latency, low.
# argv[1] is the folder that holds the `executors` package, as for every helper.
_COMMAND_STUB = ("import sys; sys.path[0] = sys.argv[1]; from executors import command; "
                 "sys.exit(command.main())")
EXECUTORS_ROOT = os.path.dirname(os.path.dirname(COMMAND_EXECUTOR))
# A task group's executor: ours (executors/default.py), as Mesos's agent runs
# mesos-default-executor for a DEFAULT ExecutorInfo that brings no command.
_DEFAULT_STUB = ("import sys; sys.path[0] = sys.argv[1]; from executors import default; "
                 "sys.exit(default.main())")


def rootfs_argv(launch: dict[str, Any]) -> list[str]:
    """Run ``launch["argv"]`` through executors/rootfs.py (see there for the keys)."""
    return [sys.executable, "-S", "-c", ROOTFS_STUB, EXECUTORS_ROOT, json.dumps(launch)]


def run_as(config: ContainerConfig) -> tuple[int, int, tuple[int, ...]] | None:
    """``(uid, gid, groups)`` of the user a container without an image runs as (the agent's
    own: None); raises LaunchError naming a user this host does not have."""
    if not config.user:
        return None
    try:
        entry = pwd.getpwnam(config.user)
    except KeyError:
        raise LaunchError(f"Failed to switch to user {config.user!r}: no such user on this "
                          "agent (--switch_user)") from None
    if entry.pw_uid == os.geteuid():
        return None
    return entry.pw_uid, entry.pw_gid, tuple(os.getgrouplist(config.user, entry.pw_gid))


@dataclasses.dataclass
class _Launch:
    """The isolators' LaunchInfos merged in ``--isolation`` order."""

    environment: dict[str, str]
    cgroup_procs: list[str] = dataclasses.field(default_factory=list)
    namespaces: set[str] = dataclasses.field(default_factory=set)
    rootfs: dict[str, Any] = dataclasses.field(default_factory=dict)
    security: dict[str, Any] = dataclasses.field(default_factory=dict)
    hostname: str | None = None

    def add(self, info: LaunchInfo) -> None:
        self.environment.update(info.environment)
        self.cgroup_procs.extend(info.cgroup_procs)
        self.namespaces |= info.namespaces
        self.rootfs.update(info.rootfs_launch)
        self.security.update(info.security)
        self.hostname = info.hostname or self.hostname


def runs_groups(info: mesos_pb2.ExecutorInfo, command_executor: bool) -> bool:
    """Our default executor runs it (a LAUNCH_GROUP's)."""
    return (not command_executor and info.type == mesos_pb2.ExecutorInfo.DEFAULT
            and not info.HasField("command"))


def executor_argv(info: mesos_pb2.ExecutorInfo, command_executor: bool) -> list[str]:
    if command_executor:
        return [sys.executable, "-S", "-c", _COMMAND_STUB, EXECUTORS_ROOT]
    if runs_groups(info, command_executor):
        return [sys.executable, "-S", "-c", _DEFAULT_STUB, EXECUTORS_ROOT]
    command = info.command
    if not command.HasField("shell") or command.shell:
        return ["/bin/sh", "-c", command.value]
    # shell=false: run `value` itself with `arguments` after argv[0], as execvp would.
    return [command.value, *list(command.arguments)[1:]]


class MesosContainerizer:
    def __init__(self, launcher: PosixLauncher, isolators: Sequence[Isolator] = (),
                 provisioner: Provisioner | None = None,
                 fork_server: ForkServer | None = None) -> None:
        self.launcher = launcher
        self.isolators = tuple(isolators)
        self.provisioner = provisioner
        self.fork_server = fork_server
        self._processes: dict[str, Process] = {}
        self._limitations: dict[str, Limitation] = {}
        self._states: dict[str, ContainerState] = {}
        self._entries: dict[str, SessionEntry] = {}  # what a session into it needs
        self.task_containers = TaskContainers(self.isolators, provisioner)  # groups' tasks

    def state(self, container_id: str) -> ContainerState | None:
        return self._states.get(container_id)

    def _move(self, container_id: str, target: ContainerState) -> None:
        self._states[container_id] = transition(container_id, self._states.get(container_id),
                                                target)

    async def recover(self, known: Collection[str]) -> None:
        # Executors are plain processes in their own sessions, adopted by the agent from its
        # checkpoints; the isolators and the provisioner remove what they hold for any other
        # container.
        if self.fork_server is not None:
            self.fork_server.start()  # warm before the first launch
        for isolator in self.isolators:
            await isolator.recover(known)
        if self.provisioner is not None:
            await self.provisioner.recover(known)
        for container_id in self._processes:
            self._watch(container_id)

    def adopt(self, container_id: str, info: mesos_pb2.ExecutorInfo, pid: int,
              start_time: float) -> Process | None:
        """Agent recovery: the executor of a checkpointed container (before ``recover``)."""
        process = self.launcher.adopt(pid, start_time)
        if process is not None:
            self._move(container_id, RUNNING)
            self._processes[container_id] = process
            if runs_groups(info, command_executor=False):
                # Its later groups need its user and sandbox: the executor's own, from /proc
                # (it runs in its sandbox and never leaves it).
                with contextlib.suppress(OSError):
                    owner = os.stat(f"/proc/{pid}").st_uid
                    self.task_containers.launched(container_id, owner or None,
                                                  os.readlink(f"/proc/{pid}/cwd"), {})
        return process

    def _watch(self, container_id: str) -> None:
        for isolator in self.isolators:
            watch = isolator.watch(container_id)
            if watch is not None:
                watch.add_done_callback(
                    lambda future: self._limited(container_id, future))

    async def launch(self, config: ContainerConfig) -> Process:
        container_id = config.container_id
        merged = _Launch(environment=dict(config.environment))
        self._move(container_id, PROVISIONING)
        try:
            config = await self._provision(config)
            self._move(container_id, PREPARING)
            for isolator in self.isolators:
                info = await isolator.prepare(container_id, config)
                if info is not None:
                    merged.add(info)
            if runs_groups(config.executor_info, config.command_executor):
                # The first group's tasks are ready before their executor can ask for them.
                user = None if config.rootfs else run_as(config)
                owner = user[0] if user else None
                security = dict(merged.security)
                await self.task_containers.prepare(container_id, config.tasks, owner,
                                                   config.directory, security, grow=False)
                self.task_containers.launched(container_id, owner, config.directory, security)
            process = await self._spawn(config, merged)
            self._entries[container_id] = SessionEntry(tuple(merged.cgroup_procs),
                                                       merged.security.get("seccomp"))
        except BaseException:
            await self.cleanup(container_id)
            raise
        self._processes[container_id] = process
        self._move(container_id, RUNNING)
        config.forked(process)
        for isolator in self.isolators:
            await isolator.isolate(container_id, process.pid)
        self._watch(container_id)
        return process

    async def _provision(self, config: ContainerConfig) -> ContainerConfig:
        """The image's rootfs, when the container has an image."""
        image = image_of(config)
        if image is None:
            return config
        name = image_name(image)
        if self.provisioner is None:
            raise LaunchError(f"Cannot run image {name!r}: this agent runs without "
                              "--image_providers=docker")
        try:
            provisioned = await self.provisioner.provision(config.container_id, name)
        except RuntimeErrorBase as exc:
            raise LaunchError(f"Failed to provision image {name!r}: {exc}") from exc
        return dataclasses.replace(config, rootfs=provisioned.rootfs,
                                   image=runtime(provisioned.config))

    async def _spawn(self, config: ContainerConfig, merged: _Launch) -> Process:
        stdout = os.path.join(config.directory, "stdout")
        stderr = os.path.join(config.directory, "stderr")
        argv = executor_argv(config.executor_info, config.command_executor)
        environment, rootfs_launch, security = merged.environment, merged.rootfs, merged.security
        command = config.tasks[0].command if config.command_executor and config.tasks \
            else config.executor_info.command
        if config.rootfs is not None:
            if "rootfs" not in rootfs_launch:
                raise LaunchError("A container image needs --isolation to include "
                                  "filesystem/linux")
            # --switch_user: the command's own user, else the image's User, else the
            # framework's; looked up in the image's /etc/passwd by the helper.
            if config.user and (command.HasField("user") or not rootfs_launch.get("user")):
                rootfs_launch["user"] = config.user
            # Docker's default capabilities bound an image task unless it was given a set.
            security.setdefault("bounding", sorted(security.get("effective") or DOCKER_DEFAULT))
            rootfs_launch["security"] = security
            if config.command_executor:
                # The executor stays on the host; its task enters the rootfs.
                task = config.tasks[0].command if config.tasks else mesos_pb2.CommandInfo()
                rootfs_launch.setdefault("argv", executor_argv(
                    mesos_pb2.ExecutorInfo(command=task), False))
                environment[TASK_LAUNCH_INFO] = json.dumps(rootfs_launch)
            else:
                rootfs_launch.setdefault("argv", argv)
                if merged.hostname and "uts" in merged.namespaces:
                    rootfs_launch["hostname"] = merged.hostname
                # In a pid namespace of its own whatever --isolation says: in the host's, the
                # host's processes would be in its /proc, their roots a link away.
                merged.namespaces.add("pid")
                argv = rootfs_argv(rootfs_launch)
            user = None
        else:
            user = run_as(config)
            if user is not None:
                security.update(uid=user[0], gid=user[1], groups=list(user[2]))
                # The task's user owns its sandbox, as in Mesos.
                os.chown(config.directory, user[0], user[1])
        if config.command_executor and self.fork_server is not None:
            return await self.fork_server.spawn(
                environment, config.directory, stdout, stderr, merged.cgroup_procs,
                merged.namespaces, security=None if config.rootfs else security,
                hostname=merged.hostname)
        hostname = merged.hostname if "uts" in merged.namespaces else None  # its own only
        if config.rootfs is None and (security or hostname):
            # A custom executor: the helper names its UTS namespace, confines it (no rootfs
            # to enter) and execs it.
            argv = rootfs_argv({"argv": argv, "security": security,
                                "working_dir": config.directory,
                                **({"hostname": hostname} if hostname else {})})
        return await self.launcher.launch(argv, environment, config.directory, stdout, stderr,
                                          cgroup_procs=merged.cgroup_procs,
                                          namespaces=merged.namespaces)

    def _limited(self, container_id: str, future: asyncio.Future[Limitation]) -> None:
        process = self._processes.get(container_id)
        if future.cancelled() or process is None or container_id in self._limitations:
            return
        limitation = future.result()
        log.warning("container %s: %s", container_id, limitation.message)
        self._limitations[container_id] = limitation
        asyncio.get_running_loop().create_task(self.destroy(container_id, process, 0.0))

    def limitation(self, container_id: str) -> Limitation | None:
        return self._limitations.get(container_id)

    async def destroy(self, container_id: str, process: Process, grace: float) -> None:
        if self._states.get(container_id) in (PREPARING, RUNNING):
            self._move(container_id, DESTROYING)
        await self.launcher.destroy(process, grace)

    async def cleanup(self, container_id: str) -> None:
        """Isolators in reverse order (each kills what is left in its cgroups first), then
        the rootfs."""
        if self._states.get(container_id) not in (None, DESTROYING):
            self._move(container_id, DESTROYING)
        self._processes.pop(container_id, None)
        self._limitations.pop(container_id, None)
        self._entries.pop(container_id, None)
        self.task_containers.forget(container_id)
        for isolator in reversed(self.isolators):
            try:
                await isolator.cleanup(container_id)
            except Exception:
                log.exception("cleanup of container %s by %s failed", container_id,
                              type(isolator).__name__)
        if self.provisioner is not None:
            try:
                await self.provisioner.destroy(container_id)
            except Exception:
                log.exception("removing the rootfs of container %s failed", container_id)
        if container_id in self._states:
            self._move(container_id, TERMINATED)
            del self._states[container_id]  # TERMINATED is final: nothing more to keep

    async def usage(self, container_id: str) -> mesos_pb2.ResourceStatistics | None:
        """Every isolator's statistics merged (Mesos's ``_usage``); the executor's process tree
        fills in what none reported (posix/cpu, posix/mem). None for a container with neither:
        unknown here, or adopted after a restart with no cgroups isolator on."""
        result = mesos_pb2.ResourceStatistics()
        # Concurrent: each is a few file reads, but a busy host can make them slow.
        for statistics in await asyncio.gather(
                *(isolator.usage(container_id) for isolator in self.isolators)):
            if statistics is not None:
                result.MergeFrom(statistics)
        process = self._processes.get(container_id)
        # The walk reads all of /proc: only when a cpu or memory figure is missing.
        if process is not None and not (result.HasField("cpus_user_time_secs")
                                        and result.HasField("mem_rss_bytes")):
            tree = await asyncio.to_thread(
                posix_usage.process_tree_usage, process.pid, process.start_time)
            if tree is not None:
                posix_usage.fill_missing(result, tree)
        if not result.ListFields():
            return None
        result.timestamp = time.time()
        return result

    async def prepare_tasks(self, container_id: str, tasks: Sequence[mesos_pb2.TaskInfo]
                            ) -> None:
        """A later group of a container that runs task groups (``task_containers.py``)."""
        await self.task_containers.prepare_later(container_id, tasks)

    def task_launch(self, container_id: str, task_id: str) -> str | None:
        return self.task_containers.take(container_id, task_id)

    async def launch_session(self, container_id: str, request: SessionRequest) -> Session:
        """A command in the running container's task (``mesos_sessions.py``)."""
        process = self._processes.get(container_id)
        if process is None or self._states.get(container_id) != RUNNING:
            raise NotFound(f"Container {container_id} is not running on this agent")
        entry = self._entries.get(container_id)
        if entry is None:
            raise Conflict(f"Container {container_id} was adopted from an earlier run of the "
                           "agent, whose launch data is gone: it cannot be entered")
        return launch_session(process.pid, entry, request)

    async def prune_images(self, excluded: Sequence[str]) -> None:
        if self.provisioner is not None:
            await self.provisioner.prune_images(excluded)

    async def close(self) -> None:
        if self.provisioner is not None:
            await self.provisioner.close()  # its image GC watch
        if self.fork_server is not None:
            await self.fork_server.close()
