"""Three masters contending in a real ZooKeeper, and agents that find the leader there: the
master HA tests and ``bench/soak.py`` run on this."""

from __future__ import annotations

import os
import time

import requests

from tests.harness.cluster import VENV_BIN, Cluster, free_port

# The masters' ZooKeeper session: an expired leader steps down this fast, and a killed leader's
# znode outlives it as long (each failover waits for it). Not shorter: a master starved for a
# third of it on a loaded machine misses its heartbeats and loses leadership.
SESSION = "5secs"


class HACluster(Cluster):
    """Three masters contending in ZooKeeper and ``agents`` agents that find the leader there."""

    def __init__(self, work_dir: str, zk: str, agents: int = 1,
                 master_flags: list[str] | None = None) -> None:
        super().__init__(work_dir, agents=agents, master_flags=master_flags)
        self.zk = f"zk://{zk}/mesos"
        self.master_ports = [free_port() for _ in range(3)]

    def start_master_n(self, index: int) -> None:
        self._spawn(f"master{index}", [
            os.path.join(VENV_BIN, "mesos-master"), f"--port={self.master_ports[index]}",
            "--allocation_interval=100ms", f"--zk={self.zk}", "--quorum=2",
            f"--zk_session_timeout={SESSION}", *self.master_flags,
        ])

    def start_agent(self, index: int) -> None:
        self._spawn(f"agent{index}", [
            os.path.join(VENV_BIN, "mesos-agent"), f"--master={self.zk}",
            f"--port={self.agent_ports[index]}",
            f"--work_dir={os.path.join(self.work_dir, f'agent{index}')}",
            "--registration_backoff_factor=100ms", "--resources=cpus:4;mem:4096;disk:4096",
        ])

    def revive(self) -> list[str]:
        """Start again every master and agent that is not running; their names."""
        dead = [name for name, process in self.processes.items() if process.poll() is not None]
        for name in dead:
            if name.startswith("master"):
                self.start_master_n(int(name.removeprefix("master")))
            else:
                self.start_agent(int(name.removeprefix("agent")))
        return dead

    def url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.master_ports[index]}"

    def leader(self, timeout: float = 45.0, not_index: int | None = None) -> int:
        """Index of the master that says it leads (its /master/state answers 200 itself)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            for index in range(3):
                if index == not_index:
                    continue
                try:
                    response = requests.get(self.url(index) + "/master/state", timeout=1,
                                            allow_redirects=False)
                except requests.RequestException:
                    continue
                if response.status_code == 200:
                    return index
            time.sleep(0.1)
        raise RuntimeError("no leader:\n" + self.logs())
