"""Real master and agent processes on loopback, for integration tests and benchmarks."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import psutil

from tests.harness import zygote
from tests.harness.wait import wait_for

VENV_BIN = os.path.dirname(sys.executable)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# The timeout bounds a hang: a daemon starved on a loaded machine may take seconds to answer.
def get_json(url: str, timeout: float = 30.0, context: ssl.SSLContext | None = None) -> Any:
    with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
        return json.loads(response.read())


class Cluster:
    """A master plus ``agents`` agents, each its own process, under ``work_dir``."""

    def __init__(self, work_dir: str, agents: int = 1, master_flags: list[str] | None = None,
                 agent_flags: list[str] | None = None, env: dict[str, str] | None = None
                 ) -> None:
        self.work_dir = work_dir
        self.port = free_port()
        # Extra environment of every daemon (LIBPROCESS_SSL_*: then the URLs are https, and
        # the harness's own calls verify the daemons against LIBPROCESS_SSL_CA_FILE).
        self.env = env or {}
        tls = self.env.get("LIBPROCESS_SSL_ENABLED") in ("1", "true")
        self.context = (ssl.create_default_context(cafile=self.env.get("LIBPROCESS_SSL_CA_FILE"))
                        if tls else None)
        if self.context is not None and self.env.get("LIBPROCESS_SSL_CERT_FILE"):
            # As the daemons' clients do: present the certificate, which they may require.
            self.context.load_cert_chain(self.env["LIBPROCESS_SSL_CERT_FILE"],
                                         self.env.get("LIBPROCESS_SSL_KEY_FILE"))
        self.master_url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.master = f"127.0.0.1:{self.port}"
        self.master_flags = master_flags or []
        self.agent_flags = agent_flags or []
        self.agent_ports = [free_port() for _ in range(agents)]
        self.processes: dict[str, subprocess.Popen[bytes] | zygote.Daemon] = {}

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes] | zygote.Daemon:
        env = dict(os.environ, PYTHONUNBUFFERED="1", **self.env)
        with open(os.path.join(self.work_dir, f"{name}.log"), "ab") as log:
            process: subprocess.Popen[bytes] | zygote.Daemon
            if zygote.enabled() and zygote.forkable(argv):  # tests: see tests/harness/zygote.py
                process = zygote.Zygote.get().spawn(argv, env, log)
            else:
                process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        self.processes[name] = process
        return process

    def start_master(self, wait: bool = True) -> None:
        self._spawn("master", [
            os.path.join(VENV_BIN, "mesos-master"), f"--port={self.port}",
            "--allocation_interval=100ms", *self.master_flags,
        ])
        if wait:
            self.wait_master()

    # Deadlines bound a hang; a loaded machine (xdist workers, other runs) can take many
    # seconds to start a daemon.
    def wait_master(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                get_json(self.master_url + "/version", context=self.context)
                return
            time.sleep(0.05)
        raise RuntimeError("master did not come up:\n" + self.log("master"))

    def start_agent(self, index: int) -> None:
        self._spawn(f"agent{index}", [
            os.path.join(VENV_BIN, "mesos-agent"), f"--master={self.master}",
            f"--port={self.agent_ports[index]}",
            f"--work_dir={os.path.join(self.work_dir, f'agent{index}')}",
            "--registration_backoff_factor=100ms", "--resources=cpus:4;mem:4096;disk:4096",
            *self.agent_flags,
        ])

    def start(self) -> Cluster:
        # All at once: the agents start while the master does and retry registering every
        # --registration_backoff_factor until it answers, as they would in production.
        self.start_master(wait=False)
        for index in range(len(self.agent_ports)):
            self.start_agent(index)
        self.wait_master()
        self.wait_agents(len(self.agent_ports))
        return self

    def wait_agents(self, count: int, timeout: float = 60.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            slaves = get_json(self.master_url + "/master/slaves", context=self.context)["slaves"]
            if len([s for s in slaves if s["active"]]) >= count:
                return list(slaves)
            time.sleep(0.05)
        raise RuntimeError("agents did not register:\n" + self.logs())

    def log(self, name: str) -> str:
        with open(os.path.join(self.work_dir, f"{name}.log"), errors="replace") as handle:
            return handle.read()[-4000:]

    def logs(self) -> str:
        return "\n".join(f"--- {name} ---\n{self.log(name)}" for name in self.processes)

    def kill(self, name: str, sig: int = signal.SIGTERM) -> None:
        process = self.processes.get(name)
        if process is not None and process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop(self) -> None:
        for name in list(self.processes):
            self.kill(name)
        # Executors run in their own sessions and outlive the agent on purpose; reap ours.
        for proc in psutil.process_iter(["cwd"]):
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                cwd = proc.info["cwd"] or ""
                if cwd.startswith(self.work_dir + os.sep):
                    os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def running_cluster(work_dir: str, agents: int = 1, **kwargs: Any) -> Iterator[Cluster]:
    cluster = Cluster(work_dir, agents, **kwargs)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def agent_state(cluster: Cluster, index: int = 0, timeout: float = 30.0) -> dict[str, Any]:
    """The agent's own ``/state``, once it knows its id: the master lists an agent as it
    admits it, and the agent takes its id a moment later, when that answer reaches it."""
    deadline = time.monotonic() + timeout
    while True:
        state: dict[str, Any] = get_json(
            f"http://127.0.0.1:{cluster.agent_ports[index]}/state")
        if state.get("id") or time.monotonic() > deadline:
            return state
        time.sleep(0.05)


def restart_agent(cluster: Cluster, index: int = 0, timeout: float = 60.0) -> None:
    """``kill -9`` agent ``index`` and start it again; returns once the new process answers its
    own ``/state`` and the master has taken it back under the same id. ``wait_agents`` alone
    can return at once: until the master sees the old link end it lists the killed agent as
    active."""
    agent_id = agent_state(cluster, index)["id"]
    before = _reregistered_time(cluster, agent_id)
    cluster.kill(f"agent{index}", signal.SIGKILL)
    cluster.start_agent(index)
    url = f"http://127.0.0.1:{cluster.agent_ports[index]}/state"
    wait_for(lambda: get_json(url).get("id") == agent_id, timeout,
             f"the restarted agent{index} to answer as {agent_id}")
    wait_for(lambda: _reregistered_time(cluster, agent_id) not in (None, before), timeout,
             f"the master to take agent{index} back")


def _reregistered_time(cluster: Cluster, agent_id: str) -> float | None:
    """When the master last (re-)admitted the agent, while it lists it as active."""
    for agent in get_json(cluster.master_url + "/master/slaves", context=cluster.context)["slaves"]:
        if agent["id"] == agent_id and agent["active"] and "reregistered_time" in agent:
            return float(agent["reregistered_time"])
    return None


def sandbox_file(cluster: Cluster, task_id: str, name: str) -> str:
    """A file in the sandbox of the executor named after ``task_id`` (a command executor's),
    live or completed."""
    state = agent_state(cluster)
    for framework in state["frameworks"] + state["completed_frameworks"]:
        for executor in framework["executors"] + framework["completed_executors"]:
            if executor["id"] == task_id:
                with open(os.path.join(executor["directory"], name)) as handle:
                    return handle.read()
    raise AssertionError(f"no executor {task_id} in the agent's state")
