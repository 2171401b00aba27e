"""The master's v1 operator API on a real master and agent: every read call in JSON and
protobuf, the SUBSCRIBE event stream through a task's life, maintenance and agent control, and
the legacy endpoints Mesos's CLI and web UI use (``/tasks`` with ``limit=-1``, state-summary,
maintenance, ``/files/download``, the agent's ``slave/tasks_*``)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from agent_runtime.proto import master_pb2
from tests.harness.cluster import Cluster, get_json, running_cluster
from tests.harness.curl import Running, Subscription, launch_task, post
from tests.harness.wait import wait_for

Call = master_pb2.Call
Response = master_pb2.Response


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[Cluster, Subscription, Running]]:
    """A cluster whose operator stream is open before a framework runs one sleeping task."""
    with tempfile.TemporaryDirectory() as work_dir, running_cluster(work_dir) as cluster:
        feed = Subscription(cluster.master_url + "/api/v1", {"type": "SUBSCRIBE"})
        # A long filter on the rest of the agent, which the test's second framework needs; the
        # task outlives every test of the module, however slow the machine.
        running = launch_task(cluster, "echo hello-out; sleep 3600", refuse_seconds=3600)
        try:
            yield cluster, feed, running
        finally:
            running.close()
            feed.close()


def call_json(cluster: Cluster, body: dict[str, Any]) -> tuple[int, Any]:
    response = requests.post(cluster.master_url + "/api/v1", json=body, timeout=10)
    if response.headers.get("Content-Type", "").startswith("application/json") and \
            response.text:
        return response.status_code, response.json()
    return response.status_code, response.text


def call_proto(cluster: Cluster, call: master_pb2.Call) -> master_pb2.Response:
    response = requests.post(cluster.master_url + "/api/v1", data=call.SerializeToString(),
                             headers={"Content-Type": "application/x-protobuf",
                                      "Accept": "application/x-protobuf"}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/x-protobuf"
    return master_pb2.Response.FromString(response.content)


def agent_url(cluster: Cluster) -> str:
    return f"http://127.0.0.1:{cluster.agent_ports[0]}"


def test_operator_stream_shows_a_task_life(cluster: tuple[Cluster, Subscription, Running]
                                           ) -> None:
    c, feed, running = cluster
    assert feed.status == 200
    subscribed = feed.take(lambda e: e["type"] == "SUBSCRIBED")
    state = subscribed["subscribed"]["get_state"]
    assert [a["agent_info"]["id"]["value"] for a in state["get_agents"]["agents"]] == \
        [running.agent_id]
    assert subscribed["subscribed"]["heartbeat_interval_seconds"] == 15
    feed.take(lambda e: e["type"] == "HEARTBEAT")
    added = feed.take(lambda e: e["type"] == "FRAMEWORK_ADDED")
    assert added["framework_added"]["framework"]["framework_info"]["id"]["value"] == \
        running.framework_id
    task = feed.take(lambda e: e["type"] == "TASK_ADDED")["task_added"]["task"]
    assert task["task_id"]["value"] == running.task_id and task["state"] == "TASK_STAGING"
    update = feed.take(lambda e: e["type"] == "TASK_UPDATED"
                       and e["task_updated"]["state"] == "TASK_RUNNING")
    assert update["task_updated"]["framework_id"]["value"] == running.framework_id
    # A second, short task: from TASK_ADDED to TASK_FINISHED on the same stream.
    short = launch_task(c, "echo hi", task_id="short", name="short", state="TASK_FINISHED")
    try:
        feed.take(lambda e: e["type"] == "TASK_ADDED"
                  and e["task_added"]["task"]["task_id"]["value"] == "short")
        states = []
        while "TASK_FINISHED" not in states:
            event = feed.take(lambda e: e["type"] == "TASK_UPDATED" and
                              e["task_updated"]["status"]["task_id"]["value"] == "short")
            states.append(event["task_updated"]["status"]["state"])
        assert states == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"], states
        assert event["task_updated"]["state"] == "TASK_FINISHED"
        # The agent names the container the task runs in (Mesos's CLI `task exec` needs it).
        container = event["task_updated"]["status"]["container_status"]["container_id"]
        assert container["value"]
    finally:
        short.close()


@pytest.mark.parametrize("kind", ["GET_STATE", "GET_AGENTS", "GET_FRAMEWORKS", "GET_TASKS",
                                  "GET_EXECUTORS", "GET_ROLES", "GET_METRICS", "GET_OPERATIONS",
                                  "GET_LOGGING_LEVEL", "GET_MAINTENANCE_STATUS",
                                  "GET_MAINTENANCE_SCHEDULE"])
def test_read_calls_in_json_and_protobuf(cluster: tuple[Cluster, Subscription, Running],
                                         kind: str) -> None:
    c, _, running = cluster
    status, body = call_json(c, {"type": kind})
    assert status == 200, body
    assert body["type"] == kind and kind.lower() in body
    response = call_proto(c, Call(type=Call.Type.Value(kind)))
    assert Response.Type.Name(response.type) == kind
    assert response.HasField(kind.lower())  # type: ignore[arg-type]
    if kind == "GET_TASKS":
        assert [t.task_id.value for t in response.get_tasks.tasks] == [running.task_id]
        assert response.get_tasks.tasks[0].statuses[-1].container_status.container_id.value
    if kind == "GET_AGENTS":
        (agent,) = response.get_agents.agents
        assert agent.agent_info.id.value == running.agent_id and agent.active
        assert {r.name for r in agent.allocated_resources} >= {"cpus", "mem"}
    if kind == "GET_STATE":
        assert len(response.get_state.get_frameworks.frameworks) >= 1
    if kind == "GET_METRICS":
        metrics = {m.name: m.value for m in response.get_metrics.metrics}
        assert metrics["master/tasks_running"] >= 1


def test_maintenance_schedule_down_and_up(cluster: tuple[Cluster, Subscription, Running]
                                          ) -> None:
    c, _, _ = cluster
    _, agents = call_json(c, {"type": "GET_AGENTS"})
    hostname = agents["get_agents"]["agents"][0]["agent_info"]["hostname"]
    machine = {"hostname": hostname}
    schedule = {"windows": [{"machine_ids": [machine],
                             "unavailability": {"start": {"nanoseconds": 1}}}]}
    # Only a scheduled machine can go down.
    status, text = call_json(c, {"type": "START_MAINTENANCE",
                                 "start_maintenance": {"machines": [machine]}})
    assert status == 400 and "not in the maintenance schedule" in text
    assert call_json(c, {"type": "UPDATE_MAINTENANCE_SCHEDULE",
                         "update_maintenance_schedule": {"schedule": schedule}})[0] == 200
    legacy = get_json(c.master_url + "/master/maintenance/schedule")
    assert legacy["windows"][0]["machine_ids"] == [{"hostname": hostname.lower()}]
    status_json = get_json(c.master_url + "/master/maintenance/status")
    assert status_json["draining_machines"][0]["id"] == {"hostname": hostname.lower()}
    assert requests.post(c.master_url + "/master/machine/down", json=[machine],
                         timeout=5).status_code == 200
    assert get_json(c.master_url + "/master/maintenance/status")["down_machines"] == \
        [{"hostname": hostname.lower()}]
    _, agents = call_json(c, {"type": "GET_AGENTS"})
    assert agents["get_agents"]["agents"][0]["active"] is False
    # A down machine must stay scheduled until it comes up.
    status, text = call_json(c, {"type": "UPDATE_MAINTENANCE_SCHEDULE",
                                 "update_maintenance_schedule": {"schedule": {}}})
    assert status == 400 and "is down" in text
    assert requests.post(c.master_url + "/master/machine/up", json=[machine],
                         timeout=5).status_code == 200
    _, schedule_now = call_json(c, {"type": "GET_MAINTENANCE_SCHEDULE"})
    assert schedule_now["get_maintenance_schedule"]["schedule"] == {}
    _, agents = call_json(c, {"type": "GET_AGENTS"})
    assert agents["get_agents"]["agents"][0]["active"] is True
    # Hostile input: a machine with neither hostname nor ip, a body that is not an array.
    assert requests.post(c.master_url + "/master/machine/down", json=[{}],
                         timeout=5).status_code == 400
    assert requests.post(c.master_url + "/master/machine/down", data="{",
                         timeout=5).status_code == 400


def test_deactivate_and_reactivate_an_agent(cluster: tuple[Cluster, Subscription, Running]
                                            ) -> None:
    c, _, running = cluster
    agent = {"value": running.agent_id}
    assert call_json(c, {"type": "DEACTIVATE_AGENT",
                         "deactivate_agent": {"agent_id": agent}})[0] == 200
    (entry,) = call_proto(c, Call(type=Call.GET_AGENTS)).get_agents.agents
    assert entry.deactivated and not entry.active
    assert call_json(c, {"type": "REACTIVATE_AGENT",
                         "reactivate_agent": {"agent_id": agent}})[0] == 200
    (entry,) = call_proto(c, Call(type=Call.GET_AGENTS)).get_agents.agents
    assert not entry.deactivated and entry.active
    status, text = call_json(c, {"type": "DEACTIVATE_AGENT",
                                 "deactivate_agent": {"agent_id": {"value": "nope"}}})
    assert status == 400 and "No agent found" in text


def test_logging_level_set_for_a_while(cluster: tuple[Cluster, Subscription, Running]) -> None:
    c, _, _ = cluster
    body: dict[str, Any] = {"type": "SET_LOGGING_LEVEL",
            "set_logging_level": {"level": 1, "duration": {"nanoseconds": 300_000_000}}}
    assert call_json(c, body)[0] == 200
    assert call_json(c, {"type": "GET_LOGGING_LEVEL"})[1]["get_logging_level"]["level"] == 1
    wait_for(lambda: call_json(c, {"type": "GET_LOGGING_LEVEL"})[1]["get_logging_level"]
             .get("level", 0) == 0, 10, "the logging level to come back")
    body["set_logging_level"]["duration"] = {"nanoseconds": -1}
    assert call_json(c, body)[0] == 400


def test_legacy_endpoints_for_the_cli_and_web_ui(cluster: tuple[Cluster, Subscription, Running]
                                                 ) -> None:
    c, _, running = cluster
    # `mesos task list` asks for every task, oldest first.
    tasks = get_json(c.master_url + "/tasks?order=asc&limit=-1")["tasks"]
    assert running.task_id in [t["id"] for t in tasks]
    times = [t["statuses"][0]["timestamp"] for t in tasks if t["statuses"]]
    assert times == sorted(times)
    assert len(get_json(c.master_url + "/tasks?limit=1")["tasks"]) == 1
    assert requests.get(c.master_url + "/tasks?limit=x", timeout=5).status_code == 400
    summary = get_json(c.master_url + "/master/state-summary")
    assert summary["slaves"][0]["TASK_RUNNING"] >= 1
    assert running.framework_id in [f["id"] for f in summary["frameworks"]]
    assert get_json(c.master_url + "/version")["build_time"] > 0
    # The agent: task counters, no `type` for a command executor, downloads.
    metrics = get_json(agent_url(c) + "/metrics/snapshot")
    assert metrics["slave/tasks_running"] >= 1 and "slave/tasks_finished" in metrics
    state = get_json(agent_url(c) + "/state")
    executor = next(e for f in state["frameworks"] for e in f["executors"]
                    if e["id"] == running.task_id)
    assert "type" not in executor
    url = agent_url(c) + "/files/download?path=" + executor["directory"] + "/stdout"
    response = requests.get(url, timeout=5)
    assert response.status_code == 200 and b"hello-out" in response.content
    assert "attachment" in response.headers["Content-Disposition"]
    assert requests.get(agent_url(c) + "/files/download?path=" + executor["directory"],
                        timeout=5).status_code == 400
    assert requests.get(agent_url(c) + "/files/download?path=/etc/passwd",
                        timeout=5).status_code == 403


STABLE = ("tasks_", "slaves_", "frameworks_", "executors_", "cpus_", "mem_", "disk_")


def prometheus_values(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = requests.get(url + "/metrics", timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith(
        "text/plain; version=0.0.4")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples}


@pytest.mark.parametrize("daemon", ["master", "agent"])
def test_prometheus_metrics_agree_with_the_snapshot(
        cluster: tuple[Cluster, Subscription, Running], daemon: str) -> None:
    c, _, running = cluster
    url = c.master_url if daemon == "master" else agent_url(c)
    snapshot = get_json(url + "/metrics/snapshot")
    values = prometheus_values(url)
    for key, value in snapshot.items():
        name = "mesos_" + key.replace("/", "_")
        assert (name, ()) in values, key
        if key.split("/", 1)[1].startswith(STABLE):
            assert values[(name, ())] == pytest.approx(value), key
    if daemon == "master":
        running_tasks = values[("mesos_master_task_states", (("state", "TASK_RUNNING"),))]
        assert running_tasks == snapshot["master/tasks_running"] >= 1
        assert values[("mesos_master_role_allocated", (("resource", "cpus"), ("role", "*")))] \
            == pytest.approx(snapshot["master/cpus_used"])
        assert values[("mesos_allocator_cycle_seconds_count", ())] >= 1
        assert values[("mesos_master_task_launch_seconds_count", ())] >= 1
    else:
        limits = [v for (n, labels), v in values.items()
                  if n == "mesos_container_mem_limit_bytes"
                  and ("executor_id", running.task_id) in labels]
        assert limits and limits[0] > 0


def test_drain_and_mark_gone_end_the_agent(cluster: tuple[Cluster, Subscription, Running]
                                           ) -> None:
    """Last in the module: it takes the cluster's only agent away."""
    c, feed, running = cluster
    agent = {"value": running.agent_id}
    assert call_json(c, {"type": "DRAIN_AGENT", "drain_agent": {
        "agent_id": agent, "max_grace_period": {"nanoseconds": 0}}})[0] == 200
    running.sub.take_update(running.task_id, "TASK_KILLED", timeout=20)
    wait_for(lambda: call_proto(c, Call(type=Call.GET_AGENTS)).get_agents.agents[0]
             .drain_info.state == 2, 10, "the agent to be DRAINED")
    assert call_json(c, {"type": "MARK_AGENT_GONE",
                         "mark_agent_gone": {"agent_id": agent}})[0] == 200
    removed = feed.take(lambda e: e["type"] == "AGENT_REMOVED")
    assert removed["agent_removed"]["agent_id"] == agent
    status, text = post(c.master_url + "/api/v1", {"type": "MARK_AGENT_GONE",
                                                   "mark_agent_gone": {}})
    assert status == 400 and "agent_id" in text
