"""The master's operator endpoints answer with Mesos's JSON shapes while a task runs.

Key sets: ``tests/harness/shapes.py``.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from agent_runtime.proto import mesos_pb2, scheduler_pb2
from agent_runtime.scheduler.client import SchedulerClient
from tests.harness.cluster import Cluster, get_json, running_cluster
from tests.harness.curl import Running, launch_task
from tests.harness.shapes import (
    AGENT_KEYS,
    AGENT_OPTIONAL,
    CLUSTER_RESOURCES,
    FRAMEWORK_KEYS,
    FRAMEWORK_OPTIONAL,
    STATE_KEYS,
    STATE_OPTIONAL,
    TASK_KEYS,
    TASK_OPTIONAL,
    TASK_RESOURCES,
    VERSION_KEYS,
    assert_keys,
)
from tests.harness.wait import wait_for


def assert_flat_resources(resources: dict[str, Any]) -> None:
    """Mesos's flat rendering: cpus, gpus, mem and disk always; ranges as '[a-b]' text."""
    assert {"cpus", "gpus", "mem", "disk"} <= resources.keys(), resources
    for name, value in resources.items():
        assert isinstance(value, int | float | str), (name, value)




@pytest.fixture(scope="module")
def busy() -> Iterator[tuple[Cluster, Running]]:
    """One cluster for the module, with a framework running one sleeping task."""
    with tempfile.TemporaryDirectory() as work_dir, running_cluster(work_dir) as cluster:
        # Sleeps past every test of the module, however slow the machine.
        running = launch_task(cluster, "echo hello-out; echo hello-err >&2; sleep 3600")
        try:
            yield cluster, running
        finally:
            running.close()


@pytest.mark.parametrize("path", ["/master/state", "/state", "/state.json",
                                  "/master/state.json", "/master/state/"])
def test_state_shape_with_a_running_task(busy: tuple[Cluster, Running], path: str) -> None:
    cluster, running = busy
    state = get_json(cluster.master_url + path)
    assert_keys(state, STATE_KEYS, STATE_OPTIONAL)
    assert state["pid"] == f"master@127.0.0.1:{cluster.port}"
    assert state["leader"] == state["pid"]
    assert state["leader_info"]["id"] == state["id"]
    assert state["leader_info"]["port"] == cluster.port
    assert state["activated_slaves"] == 1 and state["deactivated_slaves"] == 0
    assert state["orphan_tasks"] == [] and state["unregistered_frameworks"] == []
    assert all(isinstance(v, str) for v in state["flags"].values())

    (agent,) = state["slaves"]
    assert_keys(agent, AGENT_KEYS, AGENT_OPTIONAL)
    assert agent["id"] == running.agent_id and agent["id"].startswith(state["id"] + "-S")
    assert agent["pid"] == f"slave(1)@127.0.0.1:{cluster.agent_ports[0]}"
    assert agent["port"] == cluster.agent_ports[0]
    assert agent["active"] is True and agent["deactivated"] is False
    assert agent["resources"] == CLUSTER_RESOURCES
    assert agent["used_resources"] == TASK_RESOURCES
    for key in ("resources", "used_resources", "offered_resources", "unreserved_resources"):
        assert_flat_resources(agent[key])

    (framework,) = state["frameworks"]
    assert_keys(framework, FRAMEWORK_KEYS | {"role"}, FRAMEWORK_OPTIONAL)
    assert framework["id"] == running.framework_id
    assert framework["id"].startswith(state["id"] + "-")
    assert framework["role"] == "*" and framework["user"] == "root"
    assert framework["active"] is True and framework["connected"] is True
    assert framework["used_resources"] == TASK_RESOURCES
    (task,) = framework["tasks"]
    assert_keys(task, TASK_KEYS, TASK_OPTIONAL)
    assert task["id"] == "sleeper" and task["state"] == "TASK_RUNNING"
    assert task["framework_id"] == running.framework_id
    assert task["slave_id"] == running.agent_id
    assert task["executor_id"] == ""  # a command task: no executor of its own in the master
    assert task["resources"] == TASK_RESOURCES and task["role"] == "*"
    assert [s["state"] for s in task["statuses"]] == ["TASK_STARTING", "TASK_RUNNING"]
    assert all(isinstance(s["timestamp"], float) for s in task["statuses"])


def test_frameworks_endpoint(busy: tuple[Cluster, Running]) -> None:
    cluster, running = busy
    data = get_json(cluster.master_url + "/master/frameworks")
    assert_keys(data, {"frameworks", "completed_frameworks", "unregistered_frameworks"})
    (framework,) = data["frameworks"]
    assert_keys(framework, FRAMEWORK_KEYS | {"role"}, FRAMEWORK_OPTIONAL)
    assert framework["id"] == running.framework_id
    url = cluster.master_url + "/master/frameworks?framework_id="
    assert len(get_json(url + running.framework_id)["frameworks"]) == 1
    assert get_json(url + "no-such-framework")["frameworks"] == []


def test_slaves_endpoint(busy: tuple[Cluster, Running]) -> None:
    cluster, running = busy
    data = get_json(cluster.master_url + "/master/slaves")
    assert_keys(data, {"slaves", "recovered_slaves"})
    (agent,) = data["slaves"]
    assert_keys(agent, AGENT_KEYS, AGENT_OPTIONAL)
    assert agent["id"] == running.agent_id
    assert agent["attributes"] == {} and agent["reserved_resources"] == {}
    url = cluster.master_url + "/master/slaves?slave_id="
    assert len(get_json(url + running.agent_id)["slaves"]) == 1
    assert get_json(url + "no-such-agent")["slaves"] == []


def test_tasks_endpoint_and_its_query(busy: tuple[Cluster, Running]) -> None:
    cluster, running = busy
    url = cluster.master_url + "/master/tasks"
    data = get_json(url)
    assert_keys(data, {"tasks"})
    (task,) = data["tasks"]
    assert_keys(task, TASK_KEYS, TASK_OPTIONAL)
    assert task["id"] == "sleeper" and task["state"] == "TASK_RUNNING"
    assert len(get_json(url + "?task_id=sleeper")["tasks"]) == 1
    assert get_json(url + "?task_id=other")["tasks"] == []
    assert len(get_json(url + f"?framework_id={running.framework_id}")["tasks"]) == 1
    assert get_json(url + "?framework_id=other")["tasks"] == []
    assert get_json(url + "?offset=1")["tasks"] == []
    assert get_json(url + "?limit=0")["tasks"] == []
    assert len(get_json(url + "?limit=1&order=des")["tasks"]) == 1
    assert get_json(cluster.master_url + "/tasks") == get_json(url)


def test_roles_endpoint(busy: tuple[Cluster, Running]) -> None:
    cluster, running = busy
    data = get_json(cluster.master_url + "/master/roles")
    assert_keys(data, {"roles"})
    (role,) = data["roles"]
    assert_keys(role, {"name", "weight", "quota", "resources", "allocated", "offered",
                       "reserved", "frameworks"})
    assert role["name"] == "*" and role["weight"] == 1.0
    assert role["frameworks"] == [running.framework_id]
    assert role["allocated"] == TASK_RESOURCES
    assert_keys(role["quota"], {"role", "guarantee", "limit", "consumed"})


def test_flags_endpoint(busy: tuple[Cluster, Running]) -> None:
    cluster, _ = busy
    data = get_json(cluster.master_url + "/master/flags")
    assert_keys(data, {"flags"})
    flags = data["flags"]
    assert all(isinstance(v, str) for v in flags.values()), flags
    assert flags["port"] == str(cluster.port)
    assert flags["allocation_interval"] == "100ms"  # Mesos's duration text, as given
    assert flags["agent_ping_timeout"] == "15secs" and flags["max_agent_ping_timeouts"] == "5"
    assert get_json(cluster.master_url + "/flags") == data


@pytest.mark.parametrize("path", ["/health", "/master/health"])
def test_health_is_an_empty_200(busy: tuple[Cluster, Running], path: str) -> None:
    cluster, _ = busy
    response = requests.get(cluster.master_url + path, timeout=5)
    assert response.status_code == 200 and response.content == b""


def test_version_endpoint(busy: tuple[Cluster, Running]) -> None:
    cluster, _ = busy
    data = get_json(cluster.master_url + "/version")
    assert_keys(data, VERSION_KEYS)
    assert data["version"] == get_json(cluster.master_url + "/master/state")["version"]


def test_metrics_snapshot_counts_the_cluster(busy: tuple[Cluster, Running]) -> None:
    cluster, _ = busy
    metrics = get_json(cluster.master_url + "/metrics/snapshot")
    assert all(isinstance(v, int | float) for v in metrics.values()), metrics
    expected = {
        "master/elected": 1, "master/tasks_running": 1, "master/tasks_staging": 0,
        "master/tasks_starting": 0, "master/tasks_finished": 0, "master/tasks_failed": 0,
        "master/tasks_killed": 0, "master/tasks_lost": 0, "master/tasks_error": 0,
        "master/slaves_active": 1, "master/slaves_connected": 1,
        "master/slaves_disconnected": 0, "master/slaves_inactive": 0,
        "master/slaves_unreachable": 0, "master/frameworks_active": 1,
        "master/frameworks_connected": 1, "master/frameworks_disconnected": 0,
        "master/frameworks_inactive": 0, "master/cpus_total": 4, "master/cpus_used": 0.5,
        "master/mem_total": 4096, "master/mem_used": 64, "master/disk_total": 4096,
        "master/disk_used": 0, "master/gpus_total": 0,
    }
    assert {k: metrics.get(k) for k in expected} == expected
    assert metrics["master/cpus_percent"] == pytest.approx(0.5 / 4)
    assert metrics["master/uptime_secs"] > 0
    for key in ("master/outstanding_offers", "allocator/mesos/allocation_runs"):
        assert key in metrics, key


@pytest.mark.parametrize("path", ["/master/state", "/master/slaves", "/master/frameworks",
                                  "/master/tasks", "/master/roles", "/master/flags",
                                  "/metrics/snapshot", "/version"])
def test_jsonp_wraps_the_same_json(busy: tuple[Cluster, Running], path: str) -> None:
    cluster, _ = busy
    response = requests.get(cluster.master_url + path, params={"jsonp": "cb"}, timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/javascript")
    text = response.text
    assert text.startswith("cb(") and text.endswith(");"), text[:40]
    assert set(json.loads(text[3:-2])) == set(get_json(cluster.master_url + path))


def test_teardown_form_post(cluster: Cluster) -> None:
    running = launch_task(cluster, "sleep 60", name="doomed")
    url = cluster.master_url + "/master/teardown"
    try:
        missing = requests.post(url, data={}, timeout=5)
        assert missing.status_code == 400 and "frameworkId" in missing.text
        bad = requests.post(url, data={"frameworkId": "no-such-framework"}, timeout=5)
        assert bad.status_code == 400
        assert "No framework found" in bad.text and "no-such-framework" in bad.text
        assert requests.get(url, timeout=5).status_code == 405

        done = requests.post(url, data={"frameworkId": running.framework_id}, timeout=5)
        assert done.status_code == 200, done.text
        running.sub.process.wait(10)  # the master ends the scheduler's event stream
        frameworks = get_json(cluster.master_url + "/master/frameworks")
        assert frameworks["frameworks"] == []
        (gone,) = frameworks["completed_frameworks"]
        assert gone["id"] == running.framework_id and gone["active"] is False
        assert [(t["id"], t["state"]) for t in gone["completed_tasks"]] == [
            ("sleeper", "TASK_KILLED")]
        # The agent kills the task and files the framework under completed_frameworks.
        agent = f"http://127.0.0.1:{cluster.agent_ports[0]}/state"
        state = wait_for(lambda: (s := get_json(agent))["completed_frameworks"] and s,
                         what="the agent to complete the framework")
        assert state["frameworks"] == []
        assert [f["id"] for f in state["completed_frameworks"]] == [running.framework_id]
        metrics = get_json(cluster.master_url + "/metrics/snapshot")
        assert metrics["master/tasks_running"] == 0 and metrics["master/tasks_killed"] == 1
        assert metrics["master/frameworks_active"] == 0
        # A framework torn down once is not found again.
        again = requests.post(url, data={"frameworkId": running.framework_id}, timeout=5)
        assert again.status_code == 400
    finally:
        running.close()


async def test_teardown_ends_a_protobuf_scheduler(cluster: Cluster) -> None:
    """The same over our own protobuf client: TEARDOWN by form POST ends its event stream."""
    info = mesos_pb2.FrameworkInfo(user="root", name="pb")
    async with SchedulerClient(cluster.master, info) as client:
        events = client.events()
        first = await asyncio.wait_for(anext(events), 10)
        assert first.type == scheduler_pb2.Event.SUBSCRIBED
        assert client.framework_id is not None
        frameworks = get_json(cluster.master_url + "/master/frameworks")["frameworks"]
        assert [f["id"] for f in frameworks] == [client.framework_id]
        loop = asyncio.get_running_loop()
        response = await loop.run_in_executor(None, lambda: requests.post(
            cluster.master_url + "/teardown", data={"frameworkId": client.framework_id},
            timeout=5))
        assert response.status_code == 200

        async def drain() -> None:
            async for _ in events:
                pass

        await asyncio.wait_for(drain(), 10)
    state = get_json(cluster.master_url + "/master/state")
    assert state["frameworks"] == []
    assert [f["id"] for f in state["completed_frameworks"]] == [client.framework_id]
