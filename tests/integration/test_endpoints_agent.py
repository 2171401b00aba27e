"""The agent's operator endpoints: ``/state``, ``/flags``, ``/health`` and the sandbox files."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.harness.cluster import Cluster, get_json, running_cluster, sandbox_file
from tests.harness.curl import Running, launch_task
from tests.harness.shapes import CLUSTER_RESOURCES, TASK_RESOURCES, VERSION_KEYS, assert_keys
from tests.harness.wait import wait_for

AGENT_STATE_KEYS = {
    "version", "build_date", "build_time", "build_user", "start_time", "id", "pid",
    "hostname", "capabilities", "resources", "reserved_resources", "unreserved_resources",
    "reserved_resources_full", "unreserved_resources_full", "reserved_resources_allocated",
    "unreserved_resources_allocated", "resource_providers", "attributes", "master_hostname",
    "flags", "frameworks", "completed_frameworks",
}
AGENT_STATE_OPTIONAL = {"git_sha", "git_branch", "git_tag", "domain", "log_dir",
                        "external_log_file"}
FRAMEWORK_KEYS = {"id", "name", "user", "failover_timeout", "checkpoint", "hostname",
                  "capabilities", "executors", "completed_executors"}
EXECUTOR_KEYS = {"id", "name", "source", "container", "directory", "resources", "tasks",
                 "queued_tasks", "completed_tasks"}
EXECUTOR_OPTIONAL = {"role", "type", "labels"}
TASK_KEYS = {"id", "name", "framework_id", "executor_id", "slave_id", "state", "resources",
             "statuses"}
TASK_OPTIONAL = {"role", "user", "limits", "labels", "discovery", "container", "health_check"}
# What a command executor adds on top of its task (Mesos's DEFAULT_EXECUTOR_CPUS/MEM).
EXECUTOR_RESOURCES = {"cpus": 0.6, "gpus": 0, "mem": 96, "disk": 0}


@pytest.fixture(scope="module")
def busy() -> Iterator[tuple[Cluster, Running, Running]]:
    """A framework with a running task that wrote to stdout and stderr, and a finished one."""
    with tempfile.TemporaryDirectory() as work_dir, running_cluster(work_dir) as cluster:
        finished = launch_task(cluster, "echo all-done", task_id="quick", name="finished",
                               state="TASK_FINISHED")
        finished.close()  # it holds every offer while subscribed; gone, it frees them
        # Sleeps past every test of the module, however slow the machine.
        running = launch_task(cluster, "echo hello-out; echo hello-err >&2; sleep 3600")
        try:
            # The finished framework's executor exits in its own time, and the running task
            # writes after TASK_RUNNING: the tests read the agent once both have happened.
            wait_for(lambda: finished.framework_id in [
                f["id"] for f in get_json(_agent(cluster) + "/state")["completed_frameworks"]],
                60, "the finished framework's executor to exit")
            wait_for(lambda: "hello-out" in sandbox_file(cluster, "sleeper", "stdout")
                     and "hello-err" in sandbox_file(cluster, "sleeper", "stderr"),
                     60, "the running task's output")
            yield cluster, running, finished
        finally:
            running.close()


def _agent(cluster: Cluster) -> str:
    return f"http://127.0.0.1:{cluster.agent_ports[0]}"


def _executor(state: dict[str, Any], framework_id: str) -> dict[str, Any]:
    (framework,) = [f for f in state["frameworks"] if f["id"] == framework_id]
    (executor,) = framework["executors"]
    return dict(executor)


@pytest.mark.parametrize("path", ["/state", "/slave(1)/state", "/state.json", "/state/"])
def test_state_shape_with_a_running_task(busy: tuple[Cluster, Running, Running],
                                         path: str) -> None:
    cluster, running, _ = busy
    state = get_json(_agent(cluster) + path)
    assert_keys(state, AGENT_STATE_KEYS, AGENT_STATE_OPTIONAL)
    (listed,) = get_json(cluster.master_url + "/master/slaves")["slaves"]
    assert state["id"] == running.agent_id == listed["id"]
    assert state["hostname"] == listed["hostname"]
    assert state["pid"] == listed["pid"] == f"slave(1)@127.0.0.1:{cluster.agent_ports[0]}"
    assert state["resources"] == CLUSTER_RESOURCES == listed["resources"]
    assert state["unreserved_resources"] == CLUSTER_RESOURCES
    assert state["reserved_resources"] == {} and state["reserved_resources_full"] == {}
    assert state["unreserved_resources_allocated"] == EXECUTOR_RESOURCES
    assert state["attributes"] == {}
    assert state["flags"]["work_dir"] == os.path.join(cluster.work_dir, "agent0")
    assert state["flags"]["master"] == cluster.master

    (framework,) = state["frameworks"]
    assert_keys(framework, FRAMEWORK_KEYS | {"role"}, {"principal"})
    assert framework["id"] == running.framework_id and framework["name"] == "endpoints"
    executor = _executor(state, running.framework_id)
    assert_keys(executor, EXECUTOR_KEYS, EXECUTOR_OPTIONAL)
    # A command task's executor is named after the task, as in Mesos.
    assert executor["id"] == executor["source"] == "sleeper"
    assert executor["resources"] == EXECUTOR_RESOURCES
    assert os.path.isdir(executor["directory"])
    assert os.path.basename(executor["directory"]) == executor["container"]
    (task,) = executor["tasks"]
    assert_keys(task, TASK_KEYS, TASK_OPTIONAL)
    assert task["id"] == "sleeper" and task["state"] == "TASK_RUNNING"
    assert task["executor_id"] == "sleeper" and task["slave_id"] == running.agent_id
    assert task["framework_id"] == running.framework_id
    assert task["resources"] == TASK_RESOURCES
    assert [s["state"] for s in task["statuses"]] == ["TASK_STARTING", "TASK_RUNNING"]
    assert executor["queued_tasks"] == [] and executor["completed_tasks"] == []


def test_state_lists_completed_frameworks(busy: tuple[Cluster, Running, Running]) -> None:
    cluster, _, finished = busy
    state = wait_for(lambda: (s := get_json(_agent(cluster) + "/state"))["completed_frameworks"]
                     and s, what="the finished framework's executor to exit")
    (done,) = state["completed_frameworks"]
    assert_keys(done, FRAMEWORK_KEYS | {"role"}, {"principal"})
    assert done["id"] == finished.framework_id and done["executors"] == []
    (executor,) = done["completed_executors"]
    assert_keys(executor, EXECUTOR_KEYS, EXECUTOR_OPTIONAL)
    assert executor["id"] == "quick" and executor["tasks"] == []
    (task,) = executor["completed_tasks"]
    assert task["id"] == "quick" and task["state"] == "TASK_FINISHED"
    assert [s["state"] for s in task["statuses"]] == [
        "TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]


@pytest.mark.parametrize("path", ["/flags", "/slave(1)/flags"])
def test_flags(busy: tuple[Cluster, Running, Running], path: str) -> None:
    cluster, _, _ = busy
    data = get_json(_agent(cluster) + path)
    assert_keys(data, {"flags"})
    flags = data["flags"]
    assert all(isinstance(v, str) for v in flags.values()), flags
    assert flags["port"] == str(cluster.agent_ports[0])
    assert flags["resources"] == "cpus:4;mem:4096;disk:4096"
    assert flags["registration_backoff_factor"] == "100ms"
    assert flags["executor_registration_timeout"] == "1mins"  # Mesos's default, as it prints it
    assert flags["default_role"] == "*" and flags["containerizers"] == "mesos"
    assert flags == get_json(_agent(cluster) + "/state")["flags"]


@pytest.mark.parametrize("path", ["/health", "/slave(1)/health"])
def test_health(busy: tuple[Cluster, Running, Running], path: str) -> None:
    cluster, _, _ = busy
    response = requests.get(_agent(cluster) + path, timeout=5)
    assert response.status_code == 200 and response.content == b""


def test_version(busy: tuple[Cluster, Running, Running]) -> None:
    cluster, _, _ = busy
    assert_keys(get_json(_agent(cluster) + "/version"), VERSION_KEYS)


def test_jsonp(busy: tuple[Cluster, Running, Running]) -> None:
    cluster, _, _ = busy
    response = requests.get(_agent(cluster) + "/state", params={"jsonp": "show"}, timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/javascript")
    assert response.text.startswith("show({") and response.text.endswith("});")


def _latest(running: Running) -> str:
    return f"/frameworks/{running.framework_id}/executors/{running.task_id}/runs/latest"


def test_files_browse_the_sandbox(busy: tuple[Cluster, Running, Running]) -> None:
    cluster, running, _ = busy
    virtual = _latest(running)
    entries = get_json(_agent(cluster) + f"/files/browse?path={virtual}")
    by_name = {os.path.basename(e["path"]): e for e in entries}
    assert {"stdout", "stderr"} <= by_name.keys()
    stdout = by_name["stdout"]
    assert stdout["path"] == virtual + "/stdout"
    assert_keys(stdout, {"path", "nlink", "size", "mtime", "mode", "uid", "gid"})
    assert stdout["mode"].startswith("-rw") and stdout["size"] > 0
    # The real sandbox path from /state lists the same files.
    directory = _executor(get_json(_agent(cluster) + "/state"),
                          running.framework_id)["directory"]
    real = get_json(_agent(cluster) + f"/files/browse?path={directory}")
    assert {os.path.basename(e["path"]) for e in real} == set(by_name)
    assert {e["path"] for e in real} == {os.path.join(directory, n) for n in by_name}


def test_files_read_stdout_through_runs_latest(busy: tuple[Cluster, Running, Running]) -> None:
    cluster, running, _ = busy
    url = _agent(cluster) + "/files/read"
    stdout = _latest(running) + "/stdout"
    data = get_json(url + f"?path={stdout}")
    assert data["offset"] == 0 and "hello-out" in data["data"]
    assert "hello-err" in get_json(url + f"?path={_latest(running)}/stderr")["data"]
    # offset=-1 asks for the size only.
    size = len(data["data"].encode())
    assert get_json(url + f"?path={stdout}&offset=-1") == {"data": "", "offset": size}
    start = data["data"].index("hello-out")
    piece = get_json(url + f"?path={stdout}&offset={start}&length=5")
    assert piece == {"data": "hello", "offset": start}
    # length=-1 (what Mesos's log viewer sends) reads to the end, like no length.
    assert get_json(url + f"?path={stdout}&offset=-1&length=-1") == {"data": "", "offset": size}
    assert get_json(url + f"?path={stdout}&offset=0&length=-1") == data
    for query, status in (("&offset=-2", 400), ("&offset=x", 400), ("&length=-2", 400)):
        response = requests.get(url + f"?path={stdout}{query}", timeout=5)
        assert response.status_code == status, (query, response.text)
        assert response.text
    missing = requests.get(url + f"?path={_latest(running)}/no-such-file", timeout=5)
    assert missing.status_code == 404 and "does not exist" in missing.text
