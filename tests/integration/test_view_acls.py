"""The ACLs that decide what a caller sees and where its tasks may run (issue 13 item 3), on a
real master and agent: view_frameworks/view_tasks/view_executors filter every state answer
(old JSON, v1 JSON and v1 protobuf, master and agent), access_sandboxes guards the agent's
files, access_mesos_logs the master's, and a task that run_tasks refuses is a TASK_ERROR of
its own while the rest of its ACCEPT runs."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from agent_runtime.proto import master_pb2, mesos_pb2
from agent_runtime.scheduler.client import SchedulerClient
from tests.harness.cluster import Cluster, running_cluster
from tests.harness.framework import TestFramework, command_task, framework_info

pytestmark = pytest.mark.integration
SECRETS = {"ops": "o-secret", "viewer": "v-secret", "fw-a": "a-secret", "fw-b": "b-secret"}
# ops sees everything; viewer only what runs as 'nobody'; anyone else nothing.
VIEW = [{"principals": {"values": ["ops"]}, "users": {"type": "ANY"}},
        {"principals": {"values": ["viewer"]}, "users": {"values": ["nobody"]}},
        {"principals": {"type": "ANY"}, "users": {"type": "NONE"}}]
ACLS = {
    "view_frameworks": VIEW, "view_tasks": VIEW, "view_executors": VIEW,
    "access_sandboxes": VIEW,
    "access_mesos_logs": [{"principals": {"values": ["ops"]}, "logs": {"type": "ANY"}},
                          {"principals": {"type": "ANY"}, "logs": {"type": "NONE"}}],
    "run_tasks": [{"principals": {"values": ["fw-a"]}, "users": {"values": ["root"]}},
                  {"principals": {"type": "ANY"}, "users": {"type": "NONE"}}],
}
OPS, VIEWER = ("ops", SECRETS["ops"]), ("viewer", SECRETS["viewer"])


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with tempfile.TemporaryDirectory() as work_dir:
        credentials = os.path.join(work_dir, "credentials")
        with open(credentials, "w") as handle:
            json.dump({"credentials": [{"principal": p, "secret": s}
                                       for p, s in SECRETS.items()]}, handle)
        acls = os.path.join(work_dir, "acls")
        with open(acls, "w") as handle:
            json.dump(ACLS, handle)
        with running_cluster(work_dir, master_flags=[f"--credentials={credentials}",
                                                     f"--acls={acls}"],
                             agent_flags=[f"--http_credentials={credentials}",
                                          f"--acls={acls}"]) as running:
            yield running


def _v1(url: str, auth: tuple[str, str] | None, call: dict[str, Any]) -> requests.Response:
    return requests.post(url + "/api/v1", json=call, auth=auth, timeout=5)


def _client(cluster: Cluster, principal: str, user: str) -> SchedulerClient:
    info = framework_info(f"views-{principal}", principal=principal, user=user)
    return SchedulerClient(cluster.master, info, auth=(principal, SECRETS[principal]))


async def test_what_each_caller_sees_and_runs(cluster: Cluster) -> None:
    async with _client(cluster, "fw-a", "root") as client_a, \
            _client(cluster, "fw-b", "nobody") as client_b:
        framework_a = TestFramework(client_a, acknowledge_all=True)
        framework_b = TestFramework(client_b)
        hidden, shown = await framework_a.start(), await framework_b.start()
        (offer,) = await framework_a.offers()
        allowed = command_task(offer, "echo visible-only-to-ops; sleep 300", "a-task")
        refused = command_task(offer, "sleep 300", "as-daemon")
        refused.command.user = "daemon"
        await client_a.accept([offer.id.value], [allowed, refused], refuse_seconds=0)
        status = await framework_a.update("as-daemon")
        assert status.state == mesos_pb2.TASK_ERROR
        assert status.reason == mesos_pb2.TaskStatus.REASON_TASK_UNAUTHORIZED
        assert "run_tasks" in status.message and "daemon" in status.message
        await framework_a.update("a-task", mesos_pb2.TASK_RUNNING)
        try:
            _check_views(cluster, hidden, shown)
            _check_files(cluster)
        finally:
            await framework_a.stop()
            await framework_b.stop()


def _check_views(cluster: Cluster, hidden: str, shown: str) -> None:
    agent_url = f"http://127.0.0.1:{cluster.agent_ports[0]}"
    reads = [cluster.master_url + p for p in
             ("/master/state", "/master/frameworks", "/master/tasks", "/state.json")]
    reads.append(agent_url + "/state")
    for url in reads:
        for auth in (VIEWER, None):
            text = requests.get(url, auth=auth, timeout=5).text
            assert hidden not in text and "a-task" not in text, (url, auth, text[:300])
        full = requests.get(url, auth=OPS, timeout=5).text
        assert hidden in full, url
    viewer_frameworks = requests.get(cluster.master_url + "/master/frameworks", auth=VIEWER,
                                     timeout=5).json()["frameworks"]
    assert [f["id"] for f in viewer_frameworks] == [shown]
    jsonp = requests.get(cluster.master_url + "/master/state?jsonp=cb", auth=VIEWER, timeout=5)
    assert jsonp.text.startswith("cb(") and hidden not in jsonp.text
    for url in (cluster.master_url, agent_url):
        for kind in ("GET_STATE", "GET_FRAMEWORKS", "GET_TASKS", "GET_EXECUTORS"):
            answer = _v1(url, VIEWER, {"type": kind})
            assert answer.status_code == 200 and hidden not in answer.text, (url, kind)
            if (url, kind) != (cluster.master_url, "GET_EXECUTORS"):  # custom ones only
                assert hidden in _v1(url, OPS, {"type": kind}).text, (url, kind)
    # The same in protobuf.
    call = master_pb2.Call(type=master_pb2.Call.GET_STATE)
    answer = requests.post(cluster.master_url + "/api/v1", data=call.SerializeToString(),
                           auth=VIEWER, timeout=5,
                           headers={"Content-Type": "application/x-protobuf",
                                    "Accept": "application/x-protobuf"})
    state = master_pb2.Response.FromString(answer.content).get_state
    assert [f.framework_info.id.value for f in state.get_frameworks.frameworks] == [shown]
    assert not state.get_tasks.tasks and not state.get_executors.executors


def _check_files(cluster: Cluster) -> None:
    agent_url = f"http://127.0.0.1:{cluster.agent_ports[0]}"
    state = requests.get(agent_url + "/state", auth=OPS, timeout=5).json()
    (directory,) = [e["directory"] for f in state["frameworks"] for e in f["executors"]
                    if e["id"] == "a-task"]
    read = agent_url + "/files/read"
    query = {"path": directory + "/stdout", "offset": "0"}
    for auth in (VIEWER, None):
        denied = requests.get(read, params=query, auth=auth, timeout=5)
        assert denied.status_code == 403 and "access_sandboxes" in denied.text
        listing = _v1(agent_url, auth, {"type": "LIST_FILES",
                                        "list_files": {"path": directory}})
        assert listing.status_code == 403, listing.text
    assert "visible-only-to-ops" in requests.get(read, params=query, auth=OPS,
                                                 timeout=5).json()["data"]
    log = {"type": "READ_FILE", "read_file": {"path": "/master/log", "offset": 0}}
    denied = _v1(cluster.master_url, VIEWER, log)
    assert denied.status_code == 403 and "access_mesos_logs" in denied.text
    assert _v1(cluster.master_url, OPS, log).status_code != 403
