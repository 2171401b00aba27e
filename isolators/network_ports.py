"""``network/ports``: a container on the host network listens only on the ports it was given.

Every ``--container_ports_watch_interval`` one scan covers all containers: the kernel's
listening TCP sockets (IPv4 and IPv6) come from one ``sock_diag`` netlink dump (pyroute2), and a
socket belongs to a container when one of its processes holds it (``/proc/<pid>/fd`` links to
``socket:[<inode>]``). A container's processes are those of its cgroup when a cgroups isolator
runs (the first of ``cgroups/pids``, ``cgroups/mem``, ``cgroups/cpu``, ``cgroups/devices`` in
``--isolation``), else the process tree of its executor (psutil), which a daemonising child
escapes: use a cgroups isolator with this one. The scan reads /proc and so runs in a thread.

A port outside the container's ``ports`` resource is, as Mesos: with
``--enforce_container_ports`` a REASON_CONTAINER_LIMITATION (the container is destroyed),
otherwise a warning (once per container and port). With ``--check_agent_port_range_only`` only
ports inside the agent's own ``ports`` resource count: others (e.g. an ephemeral port a library
listens on) are no business of the allocator. Containers that join a named network
(``network_infos``) have their own network namespace, which this scan does not see: they are
skipped, as in Mesos.

After an agent restart ``recover`` knows only container ids, not their ports: a recovered
container is checked again once ``update`` tells its resources.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

import psutil

from agent_runtime.containerizer.cgroups import Cgroups
from agent_runtime.containerizer.containerizer import ContainerConfig
from agent_runtime.containerizer.isolation import Host
from agent_runtime.containerizer.isolator import (
    Isolator,
    LaunchInfo,
    Limitation,
    container_resources,
)
from agent_runtime.proto import mesos_pb2
from agent_runtime.resources import Ranges, Resources, parse

log = logging.getLogger(__name__)

PORTS = "ports"
# What the agent offers when --resources names no ports (agent/discovery.py, as Mesos).
DEFAULT_AGENT_PORTS: Ranges = ((31000, 32000),)
_SOCKET_LINK = "socket:["


def ports_of(resources: Resources) -> Ranges:
    """The ``ports`` ranges of ``resources``, all reservations together, merged."""
    ranges = sorted(span for (name, _), value in resources.items()
                    if name == PORTS and isinstance(value, tuple) for span in value)
    merged: list[tuple[int, int]] = []
    for begin, end in ranges:
        if merged and begin <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((begin, end))
    return tuple(merged)


def agent_ports(resources: str | None, default_role: str = "*") -> Ranges:
    """The agent's ``ports`` resource: from ``--resources``, else Mesos's default range."""
    given = ports_of(parse(resources, default_role)) if resources else ()
    return given or DEFAULT_AGENT_PORTS


def format_ranges(ranges: Ranges) -> str:
    return "[" + ",".join(f"{begin}-{end}" for begin, end in ranges) + "]"


def _within(port: int, ranges: Ranges) -> bool:
    return any(begin <= port <= end for begin, end in ranges)


def unallocated(listening: Iterable[int], allocated: Ranges, agent_range: Ranges | None
                ) -> list[int]:
    """Listening ports outside ``allocated``; only those inside ``agent_range`` when given."""
    return sorted(port for port in set(listening)
                  if not _within(port, allocated)
                  and (agent_range is None or _within(port, agent_range)))


def listening_sockets() -> dict[int, int]:
    """Inode -> local port of every listening TCP socket in this network namespace."""
    # Imported here: pyroute2 costs ~150 ms, which agents without network/ports do not pay
    # (the isolator registry imports this module).
    from pyroute2 import DiagSocket  # type: ignore[import-untyped]
    from pyroute2.netlink.diag import SS_LISTEN  # type: ignore[import-untyped]

    found: dict[int, int] = {}
    with DiagSocket() as diag:
        diag.bind()
        for family in (socket.AF_INET, socket.AF_INET6):
            for message in diag.get_sock_stats(family=family, states=1 << SS_LISTEN):
                found[int(message["idiag_inode"])] = int(message["idiag_sport"])
    return found


def socket_inodes(pids: Iterable[int]) -> set[int]:
    """Inodes of the sockets the processes ``pids`` hold open (gone processes are skipped)."""
    inodes = set()
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:  # exited meanwhile
            continue
        for fd in fds:
            try:
                link = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if link.startswith(_SOCKET_LINK):
                # sock_diag reports inodes as 32 bits; /proc as the full number.
                inodes.add(int(link[len(_SOCKET_LINK):-1]) & 0xFFFFFFFF)
    return inodes


def _process_tree(pid: int) -> list[int]:
    try:
        root = psutil.Process(pid)
        return [pid, *(child.pid for child in root.children(recursive=True))]
    except psutil.Error:
        return []


@dataclass
class _Container:
    allocated: Ranges
    future: asyncio.Future[Limitation]
    pid: int | None = None
    warned: set[int] = field(default_factory=set)


class PortsIsolator(Isolator):
    def __init__(self, cgroups: Cgroups, root: str, controller: str | None, interval: float,
                 enforce: bool, agent_range: Ranges | None) -> None:
        self.cgroups = cgroups
        self.root = root
        self.controller = controller  # None: follow the executor's process tree instead
        self.interval = interval
        self.enforce = enforce
        self.agent_range = agent_range
        self._containers: dict[str, _Container] = {}
        self._loop_task: asyncio.Task[None] | None = None

    async def recover(self, known: Collection[str]) -> None:
        return None  # nothing on disk; see the module docstring for recovered containers

    async def prepare(self, container_id: str, config: ContainerConfig) -> LaunchInfo | None:
        if config.executor_info.container.network_infos:
            return None  # its own network namespace: not ours to scan
        self._track(container_id, ports_of(container_resources(config)))
        return None

    def _track(self, container_id: str, allocated: Ranges) -> None:
        future = asyncio.get_running_loop().create_future()
        self._containers[container_id] = _Container(allocated, future)
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.get_running_loop().create_task(self._watch_loop())

    async def isolate(self, container_id: str, pid: int) -> None:
        container = self._containers.get(container_id)
        if container is not None:
            container.pid = pid

    def watch(self, container_id: str) -> asyncio.Future[Limitation] | None:
        container = self._containers.get(container_id)
        return None if container is None else container.future

    async def update(self, container_id: str, resources: Resources) -> None:
        container = self._containers.get(container_id)
        if container is not None:
            container.allocated = ports_of(resources)
        elif self.controller is not None:
            # A container recovered after a restart: its cgroup still says which processes.
            self._track(container_id, ports_of(resources))

    async def cleanup(self, container_id: str) -> None:
        container = self._containers.pop(container_id, None)
        if container is not None and not container.future.done():
            container.future.cancel()
        if not self._containers and self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None

    async def _watch_loop(self) -> None:
        while self._containers:
            await asyncio.sleep(self.interval)
            try:
                await self.check()
            except Exception:  # a failed scan must not end the watch for good
                log.exception("network/ports: scanning listening sockets failed")

    async def check(self) -> None:
        """One scan of every container (the watch loop runs this each interval)."""
        targets = {container_id: container.pid
                   for container_id, container in self._containers.items()
                   if not container.future.done()}
        if not targets:
            return
        found = await asyncio.to_thread(self._scan, targets)
        for container_id, ports in found.items():
            container = self._containers.get(container_id)
            if container is not None and not container.future.done():
                self._judge(container_id, container, ports)

    def _scan(self, targets: dict[str, int | None]) -> dict[str, set[int]]:
        """Blocking: container id -> its listening ports."""
        listening = listening_sockets()
        found = {}
        for container_id, pid in targets.items():
            inodes = socket_inodes(self._pids(container_id, pid))
            found[container_id] = {listening[inode] for inode in inodes if inode in listening}
        return found

    def _pids(self, container_id: str, pid: int | None) -> list[int]:
        if self.controller is not None:
            return self.cgroups.procs(self.controller, f"{self.root}/{container_id}")
        return [] if pid is None else _process_tree(pid)

    def _judge(self, container_id: str, container: _Container, ports: set[int]) -> None:
        for port in unallocated(ports, container.allocated, self.agent_range):
            message = (f"Container is listening on port {port} which is not in its "
                       f"assigned ports {format_ranges(container.allocated)}")
            if self.enforce:
                container.future.set_result(
                    Limitation(mesos_pb2.TaskStatus.REASON_CONTAINER_LIMITATION, message))
                return
            if port not in container.warned:
                container.warned.add(port)
                log.warning("container %s: %s", container_id, message)


@dataclass(frozen=True)
class PortsConfig:
    watch_interval: float = 30.0  # --container_ports_watch_interval, seconds
    enforce: bool = False  # --enforce_container_ports
    # --check_agent_port_range_only: only ports in the agent's own range count; None: all.
    agent_range: Ranges | None = None


def create(config: PortsConfig, host: Host) -> PortsIsolator:
    # A container's processes are found through the first cgroups isolator on (its
    # cgroup.procs), else through the executor's process tree.
    controller = host.controllers[0] if host.controllers else None
    return PortsIsolator(host.backend(), host.cgroups_root, controller, config.watch_interval,
                         config.enforce, config.agent_range)
