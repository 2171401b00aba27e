"""``network/ports`` with real processes listening on loopback, found through the kernel's
sock_diag and the container's real pids cgroup (or its process tree without cgroups)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path

import psutil
import pytest

from agent_runtime.agent.composition import build_isolators
from agent_runtime.agent.config import AgentConfig
from agent_runtime.containerizer.cgroups import CgroupsV1
from agent_runtime.containerizer.isolator import Isolator
from agent_runtime.containerizer.launcher import Process
from agent_runtime.flags import Duration
from agent_runtime.isolators import network_ports
from agent_runtime.isolators.network_ports import (
    PortsIsolator,
    agent_ports,
    format_ranges,
    listening_sockets,
    ports_of,
    socket_inodes,
    unallocated,
)
from agent_runtime.proto import mesos_pb2
from agent_runtime.resources import Resources, parse
from tests.unit.isolators.real_cgroups import (
    HIERARCHY,
    cgroup_root,
    container_config,
    launch_python,
    until,
)

LISTEN = """
import socket, sys, time
server = socket.socket()
server.bind(("127.0.0.1", int(sys.argv[1])))
server.listen()
print("listening", flush=True)
time.sleep(60)
"""


@pytest.fixture
def root() -> Iterator[str]:
    yield from cgroup_root(["pids"])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _isolators(root: str, enforce: bool = False, agent_range_only: bool = False
               ) -> tuple[Isolator, PortsIsolator]:
    """cgroups/pids and network/ports as the agent builds them (through its composition
    root): the ports isolator finds a container's processes through the pids cgroup."""
    pids, ports = build_isolators(AgentConfig(
        isolation="cgroups/pids,network/ports", cgroups_root=root, cgroups_hierarchy=HIERARCHY,
        container_ports_watch_interval=Duration(0.05), enforce_container_ports=enforce,
        check_agent_port_range_only=agent_range_only))
    assert isinstance(ports, PortsIsolator)
    return pids, ports


async def _listening_container(isolation: Sequence[Isolator], container: str, ports: str,
                               port: int, tmp_path: Path) -> Process:
    """Prepare ``container`` with ``ports`` in every isolator, start a process listening on
    ``port`` in it, isolate, and return once the kernel shows the socket listening."""
    resources = parse(f"cpus:0.1;ports:{ports}")
    cgroup_procs: list[str] = []
    for isolator in isolation:
        info = await isolator.prepare(container, container_config(container, resources,
                                                                  tmp_path))
        if info is not None:
            cgroup_procs.extend(info.cgroup_procs)
    process = await launch_python(f"import sys; sys.argv[1:] = ['{port}']\n{LISTEN}",
                                  tmp_path / container, cgroup_procs)
    for isolator in isolation:
        await isolator.isolate(container, process.pid)
    await until(lambda: "listening" in (tmp_path / container / "stdout").read_text())
    return process


def test_ports_come_from_the_ports_resource_of_every_role() -> None:
    assert ports_of(parse("cpus:1;ports:[31000-31005,31007-31007];ports(ads):[31006-31006]")) \
        == ((31000, 31007),)
    assert ports_of(parse("cpus:1")) == ()
    assert format_ranges(((31000, 31005), (32000, 32000))) == "[31000-31005,32000-32000]"


def test_only_ports_outside_the_allocation_count_and_in_the_agent_range_if_asked() -> None:
    allocated = ((31000, 31005),)
    assert unallocated([31000, 31005, 8080, 31006], allocated, None) == [8080, 31006]
    assert unallocated([31000, 8080, 31006], allocated, ((31000, 32000),)) == [31006]
    assert agent_ports(None) == ((31000, 32000),)
    assert agent_ports("cpus:1;ports:[5000-5100]") == ((5000, 5100),)


async def test_sock_diag_finds_listening_sockets_by_inode() -> None:
    with socket.socket() as server4, socket.socket(socket.AF_INET6) as server6, \
            socket.socket() as idle:
        server4.bind(("127.0.0.1", 0))
        server4.listen()
        server6.bind(("::1", 0))
        server6.listen()
        idle.bind(("127.0.0.1", 0))  # bound but not listening: not reported
        # pyroute2's sync socket runs its own event loop: off this one, as the isolator does.
        found = await asyncio.to_thread(listening_sockets)
        inodes = socket_inodes([os.getpid()])
        for server in (server4, server6):
            inode = os.fstat(server.fileno()).st_ino
            assert inode in inodes
            assert found[inode] == server.getsockname()[1]
        assert os.fstat(idle.fileno()).st_ino not in found


@pytest.mark.cgroups
async def test_a_port_outside_the_allocation_is_a_container_limitation(
        root: str, tmp_path: Path) -> None:
    pids, ports = _isolators(root, enforce=True)
    assert ports.controller == "pids"
    port = _free_port()
    await _listening_container([pids, ports], "c1", "[31000-31005]", port, tmp_path)
    watch = ports.watch("c1")
    assert watch is not None
    limitation = await asyncio.wait_for(watch, 10)
    assert limitation.reason == mesos_pb2.TaskStatus.REASON_CONTAINER_LIMITATION
    assert limitation.message == (f"Container is listening on port {port} which is not in "
                                  "its assigned ports [31000-31005]")
    await ports.cleanup("c1")
    await pids.cleanup("c1")


@pytest.mark.cgroups
async def test_a_port_inside_the_allocation_is_fine(root: str, tmp_path: Path) -> None:
    pids, ports = _isolators(root, enforce=True)
    port = _free_port()
    # Two containers: the other one's port is not this one's business, and vice versa.
    await _listening_container([pids, ports], "c1", f"[{port}-{port}]", port, tmp_path)
    other = _free_port()
    await _listening_container([pids, ports], "c2", f"[{other}-{other}]", other, tmp_path)
    for _ in range(3):
        await ports.check()
    await asyncio.sleep(0.2)  # and a few rounds of the watch loop itself
    for container in ("c1", "c2"):
        watch = ports.watch(container)
        assert watch is not None and not watch.done()
    for container in ("c1", "c2"):
        await ports.cleanup(container)
        await pids.cleanup(container)
    assert ports._loop_task is None  # the scan stops with the last container


@pytest.mark.cgroups
async def test_without_enforcement_a_stray_port_is_a_warning_once(
        root: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pids, ports = _isolators(root)
    port = _free_port()
    with caplog.at_level(logging.WARNING, logger=network_ports.__name__):
        await _listening_container([pids, ports], "c1", "[31000-31005]", port, tmp_path)
        for _ in range(3):
            await ports.check()
    warnings = [record.getMessage() for record in caplog.records if str(port) in
                record.getMessage()]
    assert len(warnings) == 1 and "c1" in warnings[0]
    watch = ports.watch("c1")
    assert watch is not None and not watch.done()
    await ports.cleanup("c1")
    await pids.cleanup("c1")


@pytest.mark.cgroups
async def test_only_the_agent_port_range_counts_when_asked(root: str, tmp_path: Path) -> None:
    port = _free_port()  # an ephemeral port, outside the agent's [31000-32000]
    pids, ports = _isolators(root, enforce=True, agent_range_only=True)
    await _listening_container([pids, ports], "c1", "[31000-31005]", port, tmp_path)
    await ports.check()
    watch = ports.watch("c1")
    assert watch is not None and not watch.done()
    await ports.cleanup("c1")
    await pids.cleanup("c1")


async def test_without_cgroups_the_executor_process_tree_is_scanned(tmp_path: Path) -> None:
    ports = PortsIsolator(CgroupsV1(HIERARCHY), "unused", None, 0.05, True, None)
    port = _free_port()
    # The listener is a grandchild: the executor's shell forks it.
    code = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {LISTEN!r}, '{port}'])"
    await ports.prepare("c1", container_config("c1", parse("cpus:0.1;ports:[31000-31000]"),
                                               tmp_path))
    process = await launch_python(code, tmp_path / "c1")
    await ports.isolate("c1", process.pid)
    await until(lambda: "listening" in (tmp_path / "c1" / "stdout").read_text())
    watch = ports.watch("c1")
    assert watch is not None
    assert str(port) in (await asyncio.wait_for(watch, 10)).message
    await ports.cleanup("c1")
    for child in psutil.Process(process.pid).children(recursive=True):  # no cgroup to empty
        child.kill()
    process.popen.kill() if process.popen else None
    await process.exited


async def test_a_container_on_a_named_network_is_not_scanned(tmp_path: Path) -> None:
    ports = PortsIsolator(CgroupsV1(HIERARCHY), "unused", None, 0.05, True, None)
    config = container_config("c1", Resources(), tmp_path, network="cni-net")
    assert await ports.prepare("c1", config) is None
    assert ports.watch("c1") is None
    await ports.cleanup("c1")
