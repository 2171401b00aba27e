"""Masters made highly available through a real ZooKeeper: election, failover, fencing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from kazoo.client import KazooClient

from tests.harness.cluster import VENV_BIN, get_json
from tests.harness.ha import HACluster
from tests.harness.zookeeper import zookeeper_server

pytestmark = pytest.mark.zookeeper


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def ha(tmp_path: Any) -> Iterator[HACluster]:
    with zookeeper_server(str(tmp_path)) as zk:
        cluster = HACluster(str(tmp_path), zk)
        try:
            for index in range(3):
                cluster.start_master_n(index)
            cluster.start_agent(0)
            yield cluster
        finally:
            cluster.stop()


def _active_agents(url: str) -> list[dict[str, Any]]:
    try:
        return [a for a in get_json(url + "/master/slaves")["slaves"] if a["active"]]
    except OSError:
        return []


def _execute(master: str, name: str, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([os.path.join(VENV_BIN, "mesos-execute"), f"--master={master}",
                           f"--name={name}", f"--command={command}",
                           "--resources=cpus:0.1;mem:32"],
                          capture_output=True, text=True, timeout=60)


def test_election_znodes_standbys_and_failover(ha: HACluster) -> None:
    leader = ha.leader()
    _wait(lambda: bool(_active_agents(ha.url(leader))), 45, "the agent to find the leader")

    # The znodes are Mesos's: json.info_<seq> with the MasterInfo JSON; the lowest leads.
    zk = KazooClient(hosts=ha.zk[len("zk://"):].split("/")[0])
    zk.start()
    try:
        def contenders() -> list[str]:
            return sorted(c for c in zk.get_children("/mesos") if c.startswith("json.info_"))

        _wait(lambda: len(contenders()) == 3, 45, "all three masters to contend")
        children = contenders()
        data, _ = zk.get(f"/mesos/{children[0]}")
        info = json.loads(data)
        assert info["address"]["port"] == ha.master_ports[leader]
        assert info["id"] and info["hostname"]
    finally:
        zk.stop()

    # Standbys answer what is theirs and send the rest to the leader.
    standby = next(i for i in range(3) if i != leader)
    assert requests.get(ha.url(standby) + "/health", timeout=2).status_code == 200
    redirect = requests.get(ha.url(standby) + "/master/state", timeout=2,
                            allow_redirects=False)
    assert redirect.status_code == 307
    assert redirect.headers["Location"] == f"//127.0.0.1:{ha.master_ports[leader]}/master/state"
    scheduler = requests.post(ha.url(standby) + "/api/v1/scheduler", data=b"{}", timeout=2,
                              headers={"Content-Type": "application/json"},
                              allow_redirects=False)
    assert scheduler.status_code == 307

    # A task through the ZooKeeper URL, as users point mesos-execute at an HA cluster.
    done = _execute(ha.zk, "before", "echo before")
    assert done.returncode == 0, done.stdout + done.stderr

    # kill -9 the leader: another leads once its session expires (the bound is a hang's), the
    # agent follows, tasks launch again.
    ha.kill(f"master{leader}", signal.SIGKILL)
    new = ha.leader(timeout=45, not_index=leader)
    _wait(lambda: bool(_active_agents(ha.url(new))), 45, "the agent to re-register")
    done = _execute(ha.zk, "after", "echo after")
    assert done.returncode == 0, done.stdout + done.stderr + ha.logs()


def test_expired_session_makes_the_leader_step_down(ha: HACluster) -> None:
    leader = ha.leader()
    process = ha.processes[f"master{leader}"]
    process.send_signal(signal.SIGSTOP)  # no heartbeats: the session expires (SESSION)
    try:
        new = ha.leader(timeout=45, not_index=leader)
        assert new != leader
    finally:
        process.send_signal(signal.SIGCONT)
    # Woken up, the old leader learns its session is gone and exits instead of acting.
    assert process.wait(45) == 1
    assert "lost leadership" in ha.log(f"master{leader}")


def test_registry_lives_in_zookeeper(ha: HACluster) -> None:
    leader = ha.leader()
    url = ha.url(leader)
    _wait(lambda: bool(_active_agents(url)), 45, "the agent to register")
    assert requests.put(url + "/weights", json=[{"role": "ha", "weight": 4}],
                        timeout=5).status_code == 200
    (agent,) = _active_agents(url)
    reserve = {"slaveId": agent["id"], "resources": json.dumps([{
        "name": "cpus", "type": "SCALAR", "scalar": {"value": 1},
        "reservations": [{"type": "DYNAMIC", "role": "ha"}]}])}
    assert requests.post(url + "/master/reserve", data=reserve, timeout=5).status_code == 202

    ha.kill(f"master{leader}", signal.SIGKILL)
    new = ha.url(ha.leader(timeout=45, not_index=leader))
    assert {"role": "ha", "weight": 4.0} in requests.get(new + "/weights", timeout=5).json()
    _wait(lambda: bool(_active_agents(new)), 45, "the agent to re-register")
    (agent,) = _active_agents(new)
    assert agent["reserved_resources"]["ha"]["cpus"] == 1
