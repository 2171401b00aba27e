"""The pod example (seed 002) on real processes: a master, three agents (each advertising its
own hostname, so each is its own worker node), the pod framework as ``python -m examples.pods
serve``, pods submitted and listed through its command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests.harness.cluster import Cluster, agent_state, free_port, get_json

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class NamedAgents(Cluster):
    """Agents on one machine, each with a hostname of its own (node0, node1, node2)."""

    def start_agent(self, index: int) -> None:
        self.agent_flags = [f for f in self.agent_flags if not f.startswith("--hostname=")]
        self.agent_flags.append(f"--hostname=node{index}")
        super().start_agent(index)


def pods_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "examples.pods", *args], cwd=ROOT,
                          input=stdin, capture_output=True, text=True, timeout=30)


@pytest.fixture(scope="module")
def pods(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, str]]:
    # One cluster for the module: three agents and the framework take a while to start.
    cluster = NamedAgents(str(tmp_path_factory.mktemp("pods")), agents=3)
    cluster.start()
    port = free_port()
    log = open(os.path.join(cluster.work_dir, "pods.log"), "wb")  # noqa: SIM115
    framework = subprocess.Popen(
        [sys.executable, "-m", "examples.pods", "serve", f"--master={cluster.master}",
         f"--port={port}"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    api = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if len(get_json(f"http://{api}/pods")["nodes"]) == 3:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, cluster.log("master")
            time.sleep(0.1)
        yield cluster, api
    finally:
        framework.terminate()
        framework.wait(10)
        log.close()
        cluster.stop()


def pod_yaml(name: str) -> str:
    return (f"name: {name}\ncontainers:\n  - name: main\n    command: sleep 60\n"
            "    resources: {cpus: 0.45, mem: 64}\n")


def test_twenty_pods_are_placed_on_the_three_worker_nodes(pods: tuple[Cluster, str]) -> None:
    cluster, api = pods
    done = pods_cli("submit", f"--api={api}", "-", stdin=pod_yaml("pod00"))
    assert done.returncode == 0, done.stderr
    for index in range(1, 20):  # the rest straight to the API (a CLI start each is slow)
        request = urllib.request.Request(f"http://{api}/pods", method="POST",
                                         data=pod_yaml(f"pod{index:02d}").encode())
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 201
    deadline = time.monotonic() + 60
    while True:
        listed = get_json(f"http://{api}/pods")["pods"]
        if all(p["phase"] == "Running" for p in listed):
            break
        assert time.monotonic() < deadline, (listed, cluster.logs())
        time.sleep(0.2)
    assert len(listed) == 20
    # 0.45 cpus each on agents of 4 cpus: at most 8 fit a node, so all three are used.
    by_node: dict[str, int] = {}
    for pod in listed:
        by_node[pod["node"]] = by_node.get(pod["node"], 0) + 1
    assert set(by_node) == {"node0", "node1", "node2"} and max(by_node.values()) <= 8
    tasks = get_json(cluster.master_url + "/master/tasks")["tasks"]
    assert sum(t["state"] == "TASK_RUNNING" for t in tasks) == 20
    # k8sm's way: one executor per node runs every pod there, each pod a task group.
    for index in range(3):
        (framework,) = agent_state(cluster, index)["frameworks"]
        (executor,) = framework["executors"]
        assert executor["id"] == "pods-executor"
        assert len(executor["tasks"]) == by_node[f"node{index}"]

    table = pods_cli("list", f"--api={api}")
    assert table.returncode == 0 and len(table.stdout.splitlines()) == 20
    assert "pod07" in table.stdout and "Running" in table.stdout


def post(api: str, body: str) -> tuple[int, str]:
    request = urllib.request.Request(f"http://{api}/pods", method="POST", data=body.encode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_bad_pod_specs_are_refused_by_name_and_nothing_is_lost(
        pods: tuple[Cluster, str]) -> None:
    _, api = pods
    before = len(get_json(f"http://{api}/pods")["pods"])
    for spec, problem in [
        ("name: ../etc\ncontainers: [{name: a, command: x}]", "'name'"),
        ("name: p\ncontainers: []", "'containers'"),
        ("name: p\ncontainers: [{name: a, command: x, resources: {cpus: .nan}}]", "cpus"),
        ("name: p\ncontainers: [{name: a, command: x, ports: [{hostPort: 70000}]}]",
         "hostPort"),
        ("!!python/object/apply:os.system ['touch /tmp/pwned']", "JSON or YAML"),
        ("[unclosed", "JSON or YAML"),
        ("name: p\ncontainers: [{name: a, command: '" + "x" * 70_000 + "'}]", "bytes"),
    ]:
        status, text = post(api, spec)
        assert status in (400, 413) and problem in text, (spec[:80], status, text)
    # The command line says it in one line and exits 1.
    done = pods_cli("submit", f"--api={api}", "-", stdin="name: p\ncontainers: []")
    assert done.returncode == 1 and "400" in done.stderr and "'containers'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    status, text = post(api, pod_yaml("fine"))
    assert status == 201 and json.loads(text)["name"] == "fine"
    status, text = post(api, pod_yaml("fine"))
    assert status == 400 and "exists already" in text
    names = [p["name"] for p in get_json(f"http://{api}/pods")["pods"]]
    assert len(names) == before + 1 and "fine" in names
