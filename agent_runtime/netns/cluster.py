"""A cluster whose masters, agents and ZooKeeper each run in a host of their own (``network.py``).

Every host has its own address and port space, so each daemon listens where it would on a real
machine: masters on ``<ip>:5050``, agents on ``<ip>:5051`` advertising that address to the master
and their executors, ZooKeeper on ``<ip>:2181``. Hosts are named ``zk``, ``master1``..,
``agent1``.. and the agents advertise those names as their hostnames. With more than one master
(or ``zookeeper=True``) the masters contend in ZooKeeper and agents find the leader there, as
``vagrant/`` sets them up.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import psutil

from agent_runtime.errors import RuntimeErrorBase
from agent_runtime.netns.network import Host, Network

MASTER_PORT = 5050
AGENT_PORT = 5051
ZK_PORT = 2181
ZK_SERVER = "/usr/share/zookeeper/bin/zkServer.sh"


class ClusterError(RuntimeErrorBase):
    """A daemon of the cluster did not come up in time."""


@dataclass(frozen=True)
class ClusterSpec:
    work_dir: str
    masters: int = 1
    agents: int = 3
    zookeeper: bool | None = None  # None: when there is more than one master
    wire: str = "bridge"  # or "switch" (loss and delay)
    master_flags: tuple[str, ...] = ()
    agent_flags: tuple[str, ...] = ("--resources=cpus:4;mem:4096;disk:4096",)
    bin_dir: str = field(default_factory=lambda: os.path.dirname(sys.executable))

    @property
    def uses_zookeeper(self) -> bool:
        return self.masters > 1 if self.zookeeper is None else self.zookeeper


def get_json(url: str, timeout: float = 2.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def _leads(url: str) -> bool:
    """A standby answers /master/state with a redirect to the leader; only the leader with 200."""
    try:
        with _opener.open(url + "/master/state", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class NamespaceCluster:
    def __init__(self, spec: ClusterSpec) -> None:
        self.spec = spec
        names = [f"master{i + 1}" for i in range(spec.masters)]
        names += [f"agent{i + 1}" for i in range(spec.agents)]
        if spec.uses_zookeeper:
            names.insert(0, "zk")
        self.names = names
        self.network: Network | None = None
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    # -- where things are ---------------------------------------------------------------------

    def host(self, name: str) -> Host:
        assert self.network is not None, "the cluster is not started"
        return self.network.hosts[name]

    @property
    def masters(self) -> list[str]:
        return [n for n in self.names if n.startswith("master")]

    @property
    def agents(self) -> list[str]:
        return [n for n in self.names if n.startswith("agent")]

    def url(self, name: str) -> str:
        port = MASTER_PORT if name.startswith("master") else AGENT_PORT
        return f"http://{self.host(name).ip}:{port}"

    @property
    def master(self) -> str:
        """What agents and schedulers are pointed at: ``zk://...`` or the one master."""
        if self.spec.uses_zookeeper:
            return f"zk://{self.host('zk').ip}:{ZK_PORT}/mesos"
        return f"{self.host('master1').ip}:{MASTER_PORT}"

    # -- starting -----------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> NamespaceCluster:
        os.makedirs(self.spec.work_dir, exist_ok=True)
        self.network = Network(self.names, self.spec.wire)
        try:
            if self.spec.uses_zookeeper:
                self.start_zookeeper(timeout)
            for name in self.masters:
                self.start_daemon(name)
            for name in self.agents:
                self.start_daemon(name)
            self.wait_agents(self.spec.agents, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, name: str, argv: list[str], new_session: bool = False,
               **env_extra: str) -> None:
        log = open(os.path.join(self.spec.work_dir, f"{name}.log"), "ab")  # noqa: SIM115
        env = dict(os.environ, PYTHONUNBUFFERED="1", **env_extra)
        self.processes[name] = subprocess.Popen(
            self.host(name).argv(argv), stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=new_session)
        log.close()

    def start_zookeeper(self, timeout: float) -> None:
        host = self.host("zk")
        data = os.path.join(self.spec.work_dir, "zk-data")
        os.makedirs(data, exist_ok=True)
        config = os.path.join(self.spec.work_dir, "zoo.cfg")
        with open(config, "w") as handle:
            handle.write(f"tickTime=500\ndataDir={data}\nclientPort={ZK_PORT}\n"
                         f"clientPortAddress={host.ip}\nadmin.enableServer=false\n"
                         "4lw.commands.whitelist=ruok\nminSessionTimeout=1000\n"
                         "maxSessionTimeout=60000\n")
        self._spawn("zk", [ZK_SERVER, "start-foreground", config], new_session=True,
                    ZOOCFGDIR=self.spec.work_dir, ZOO_LOG_DIR=self.spec.work_dir)
        deadline = time.monotonic() + timeout
        while not _zookeeper_answers(host.ip):
            if time.monotonic() > deadline or self.processes["zk"].poll() is not None:
                raise ClusterError("ZooKeeper did not start:\n" + self.log("zk"))
            time.sleep(0.1)

    def daemon_argv(self, name: str) -> list[str]:
        host, spec = self.host(name), self.spec
        work_dir = os.path.join(spec.work_dir, name)
        if name.startswith("master"):
            argv = [os.path.join(spec.bin_dir, "mesos-master"), f"--ip={host.ip}",
                    f"--port={MASTER_PORT}", f"--hostname={name}", f"--work_dir={work_dir}",
                    "--allocation_interval=100ms"]
            if spec.uses_zookeeper:
                quorum = spec.masters // 2 + 1
                # 5 s, not Mesos's 10: failovers stay quick, and a master starved for a second
                # or two on a loaded host (2 s did) keeps its session.
                argv += [f"--zk={self.master}", f"--quorum={quorum}", "--zk_session_timeout=5secs"]
            return argv + list(spec.master_flags)
        return [os.path.join(spec.bin_dir, "mesos-agent"), f"--master={self.master}",
                f"--ip={host.ip}", f"--advertise_ip={host.ip}", f"--port={AGENT_PORT}",
                f"--hostname={name}", f"--work_dir={work_dir}",
                "--registration_backoff_factor=100ms", *spec.agent_flags]

    def start_daemon(self, name: str) -> None:
        self._spawn(name, self.daemon_argv(name))

    def leader(self, timeout: float = 20.0, besides: str | None = None) -> str:
        """The master that leads (answers /master/state itself), other than ``besides``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name in self.masters:
                if name != besides and _leads(self.url(name)):
                    return name
            time.sleep(0.05)
        raise ClusterError("no master leads:\n" + self.logs())

    def wait_agents(self, count: int, timeout: float = 30.0,
                    besides: str | None = None) -> list[dict[str, Any]]:
        """The leader's active agents, once there are ``count`` of them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader = self.leader(max(0.1, deadline - time.monotonic()), besides)
            with contextlib.suppress(OSError, ValueError):
                slaves = get_json(self.url(leader) + "/master/slaves")["slaves"]
                active = [s for s in slaves if s["active"]]
                if len(active) >= count:
                    return active
            time.sleep(0.05)
        raise ClusterError(f"{count} agents did not register:\n" + self.logs())

    # -- the wire ------------------------------------------------------------------------------

    def cut(self, name: str) -> None:
        """Partition host ``name`` from every other (and from this machine)."""
        assert self.network is not None
        self.network.cut(name)

    def heal(self, name: str) -> None:
        assert self.network is not None
        self.network.heal(name)

    def impair(self, name: str, loss: float, delay: float) -> None:
        assert self.network is not None
        self.network.impair(name, loss, delay)

    # -- logs and stopping --------------------------------------------------------------------

    def log(self, name: str) -> str:
        with open(os.path.join(self.spec.work_dir, f"{name}.log"), errors="replace") as handle:
            return handle.read()[-3000:]

    def logs(self) -> str:
        return "\n".join(f"--- {name} ---\n{self.log(name)}" for name in self.processes)

    def kill(self, name: str, sig: int = signal.SIGTERM) -> None:
        process = self.processes.get(name)
        if process is None or process.poll() is not None:
            return
        if name == "zk":
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        else:
            process.send_signal(sig)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop(self) -> None:
        for name in list(self.processes):
            self.kill(name)
        # Executors run in sessions of their own and outlive their agent on purpose; ours go.
        root = self.spec.work_dir + os.sep
        for proc in psutil.process_iter(["cwd"]):
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                if (proc.info["cwd"] or "").startswith(root):
                    os.killpg(proc.pid, signal.SIGKILL)
        if self.network is not None:
            self.network.close()


def _zookeeper_answers(ip: str) -> bool:
    try:
        with socket.create_connection((ip, ZK_PORT), timeout=0.5) as sock:
            sock.sendall(b"ruok")
            return sock.recv(4) == b"imok"
    except OSError:
        return False
