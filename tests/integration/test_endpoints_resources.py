"""What an agent advertises: detected host resources, ``--resources`` (text and JSON) and
``--attributes``, as ``/master/slaves`` and the agent's ``/state`` show them.

Detection follows ``reference/mesos-features.md`` 4.3: cpus are the online CPUs, mem is total RAM
minus 1 GB (half of it under 2 GB), disk is the work dir's filesystem minus 5 GB (half of it under
10 GB), ports are ``[31000-32000]``; only what ``--resources`` does not name is detected.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil
import pytest

from agent_runtime.agent import discovery
from tests.harness.cluster import VENV_BIN, Cluster, free_port, get_json
from tests.harness.wait import wait_for

MB = 1024 * 1024


def expected_mem() -> int:
    total = psutil.virtual_memory().total // MB
    return total - 1024 if total >= 2048 else total // 2


def expected_disk(work_dir: str) -> int:
    total = shutil.disk_usage(work_dir).total // MB
    return total - 5 * 1024 if total >= 10 * 1024 else total // 2


@pytest.fixture(scope="module")
def master() -> Iterator[Cluster]:
    """A master alone; each test starts the agents it needs with its own flags."""
    with tempfile.TemporaryDirectory() as work_dir:
        cluster = Cluster(work_dir, agents=0)
        try:
            cluster.start_master()
            yield cluster
        finally:
            cluster.stop()


def start_agent(cluster: Cluster, name: str, *flags: str) -> tuple[str, dict[str, Any]]:
    """``mesos-agent`` with exactly ``flags`` besides the master, port and work dir; returns
    its work dir and its entry in ``/master/slaves`` once it is active."""
    port = free_port()
    work_dir = os.path.join(cluster.work_dir, name)
    cluster._spawn(name, [
        os.path.join(VENV_BIN, "mesos-agent"), f"--master={cluster.master}", f"--port={port}",
        f"--work_dir={work_dir}", "--registration_backoff_factor=100ms", *flags,
    ])

    def registered() -> dict[str, Any] | None:
        for agent in get_json(cluster.master_url + "/master/slaves")["slaves"]:
            if agent["port"] == port and agent["active"]:
                return dict(agent)
        return None

    try:
        return work_dir, wait_for(registered, what=f"{name} to register")
    except AssertionError:
        raise AssertionError(cluster.log(name)) from None


def agent_state(agent: dict[str, Any]) -> dict[str, Any]:
    return dict(get_json(f"http://127.0.0.1:{agent['port']}/state"))


def test_detected_resources_match_the_host(master: Cluster) -> None:
    work_dir, agent = start_agent(master, "detected")
    expected = {
        "cpus": float(psutil.cpu_count() or 1),
        "gpus": 0.0,
        "mem": float(expected_mem()),
        "disk": float(expected_disk(work_dir)),
        "ports": "[31000-32000]",
    }
    try:
        assert agent["resources"] == expected
        assert agent["unreserved_resources"] == expected and agent["reserved_resources"] == {}
        state = agent_state(agent)
        assert state["resources"] == expected
        assert "resources" not in state["flags"]
        metrics = get_json(master.master_url + "/metrics/snapshot")
        assert metrics["master/cpus_total"] == expected["cpus"]
        assert metrics["master/mem_total"] == expected["mem"]
        assert metrics["master/disk_total"] == expected["disk"]
    finally:
        master.kill("detected")


PORTS_JSON = {"name": "ports", "type": "RANGES",
              "ranges": {"range": [{"begin": 7000, "end": 7099}, {"begin": 8000, "end": 8000}]}}


@pytest.mark.parametrize(
    ("flags", "resources", "reserved"),
    [
        pytest.param(
            ["--resources=cpus:2;mem:1024;disk:2048;ports:[4000-4010,5000-5000];cpus(ads):1.5"],
            {"cpus": 3.5, "gpus": 0, "mem": 1024, "disk": 2048,
             "ports": "[4000-4010,5000-5000]"},
            {"ads": {"cpus": 1.5, "gpus": 0, "mem": 0, "disk": 0}},
            id="text",
        ),
        pytest.param(
            ["--resources=" + json.dumps([
                {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1.5}},
                {"name": "mem", "type": "SCALAR", "scalar": {"value": 512}},
                {"name": "disk", "type": "SCALAR", "scalar": {"value": 100}, "role": "ads"},
                PORTS_JSON,
            ])],
            {"cpus": 1.5, "gpus": 0, "mem": 512, "disk": 100, "ports": "[7000-7099,8000-8000]"},
            {"ads": {"cpus": 0, "gpus": 0, "mem": 0, "disk": 100}},
            id="json",
        ),
        # Only what is not named is detected; an explicit zero turns detection off.
        pytest.param(
            ["--resources=cpus:0;mem:256;disk:64;ports:[9000-9001]"],
            {"cpus": 0, "gpus": 0, "mem": 256, "disk": 64, "ports": "[9000-9001]"}, {},
            id="explicit-zero-cpus",
        ),
        pytest.param(
            ["--resources=cpus:3;gpus:0"],
            {"cpus": 3, "gpus": 0, "mem": "detected", "disk": "detected",
             "ports": "[31000-32000]"}, {},
            id="partial",
        ),
        # Detected resources get --default_role, as Mesos does.
        pytest.param(
            ["--resources=mem:128;disk:32", "--default_role=ads"],
            {"cpus": "detected", "gpus": 0, "mem": 128, "disk": 32, "ports": "[31000-32000]"},
            {"ads": {"cpus": "detected", "gpus": 0, "mem": 128, "disk": 32,
                     "ports": "[31000-32000]"}},
            id="default-role",
        ),
    ],
)
def test_given_resources_are_what_the_master_shows(
    master: Cluster, flags: list[str], resources: dict[str, Any], reserved: dict[str, Any],
    request: pytest.FixtureRequest,
) -> None:
    name = "given-" + request.node.callspec.id
    work_dir, agent = start_agent(master, name, *flags)
    # The work dir may not exist yet when disk is given; its parent is on the same filesystem.
    detected = {"cpus": float(psutil.cpu_count() or 1), "mem": float(expected_mem()),
                "disk": float(expected_disk(os.path.dirname(work_dir)))}

    def fill(flat: dict[str, Any]) -> dict[str, Any]:
        return {k: detected[k] if v == "detected" else v for k, v in flat.items()}

    try:
        assert agent["resources"] == fill(resources)
        assert agent["reserved_resources"] == {r: fill(v) for r, v in reserved.items()}
        state = agent_state(agent)
        assert state["resources"] == agent["resources"]
        assert state["reserved_resources"] == agent["reserved_resources"]
        assert state["unreserved_resources"] == agent["unreserved_resources"]
    finally:
        master.kill(name)


def test_attributes_are_flat_in_both_daemons(master: Cluster) -> None:
    _, agent = start_agent(master, "attributes", "--resources=cpus:1;mem:128",
                           "--attributes=rack:r1;zone:z2;level:3;keys:[1000-1500]")
    try:
        expected = {"rack": "r1", "zone": "z2", "level": 3.0, "keys": "[1000-1500]"}
        assert agent["attributes"] == expected
        assert agent_state(agent)["attributes"] == expected
    finally:
        master.kill("attributes")


@pytest.mark.parametrize(
    ("flag", "words"),
    [
        ("--resources=cpus:abc", "abc"),
        ("--resources=cpus:-1", "negative"),
        ("--resources=cpus", "cpus"),
        ('--resources=[{"name": "cpus"', "JSON"),
        ("--resources=ports:[5-2]", "5-2"),
        ("--resources=gpus:1.5", "whole"),
        ("--attributes=keys:[a-b]", "a-b"),
        ("--attributes=rack", "rack"),
    ],
)
def test_bad_flags_exit_nonzero_with_one_line(tmp_path: Path, flag: str, words: str) -> None:
    done = subprocess.run(
        [os.path.join(VENV_BIN, "mesos-agent"), f"--master=127.0.0.1:{free_port()}",
         f"--port={free_port()}", f"--work_dir={tmp_path}", flag],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode != 0
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert words in lines[0] and "Traceback" not in lines[0], lines[0]
    assert flag.split("=")[0].lstrip("-").rstrip("s") in lines[0], lines[0]  # names the flag


@pytest.mark.parametrize(
    ("ram_mb", "disk_mb", "mem", "disk"),
    [
        (24 * 1024, 100 * 1024, 23 * 1024, 95 * 1024),  # big: total - 1 GB and total - 5 GB
        (2048, 10 * 1024, 1024, 5 * 1024),  # at the thresholds: still minus 1 GB / 5 GB
        (1536, 8 * 1024, 768, 4 * 1024),  # small host: half of each
    ],
)
def test_detection_rule_for_small_and_big_hosts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ram_mb: int, disk_mb: int, mem: int,
    disk: int,
) -> None:
    """The rule itself (4.3), for host sizes this machine does not have; in-process."""
    monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(total=ram_mb * MB))
    monkeypatch.setattr(shutil, "disk_usage",
                        lambda path: SimpleNamespace(total=disk_mb * MB, used=0, free=0))
    flat = discovery.detect(str(tmp_path), None, "*", "posix/cpu,posix/mem").flat()
    assert (flat["mem"], flat["disk"], flat["ports"]) == (mem, disk, "[31000-32000]")
