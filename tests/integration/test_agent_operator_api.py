"""The agent's v1 operator API on a real master and agent: every state call in JSON and
protobuf, and ``mesos task exec`` into a running task driven over the wire as Mesos's CLI
drives it (``src/python/cli_new/lib/cli/mesos.py`` TaskIO): the parent container from the task's
first status, LAUNCH_NESTED_CONTAINER_SESSION for the output, ATTACH_CONTAINER_INPUT (a short
test connection, then the stream), WAIT_CONTAINER for the exit status. Bad and hostile calls
get a 4xx naming the problem."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from agent_runtime.codec import recordio
from agent_runtime.proto import agent_pb2
from tests.harness.cluster import Cluster, get_json, running_cluster
from tests.harness.curl import Running, launch_task
from tests.harness.task_exec import RECORDIO, TaskExec, agent_api, parent_of

Call = agent_pb2.Call


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[Cluster, Running]]:
    with tempfile.TemporaryDirectory() as work_dir, running_cluster(work_dir) as cluster:
        # Sleeps past every test of the module, however slow the machine.
        running = launch_task(cluster, "echo hello-out; sleep 3600")
        try:
            yield cluster, running
        finally:
            running.close()


def test_task_exec_echo_hi_prints_hi(cluster: tuple[Cluster, Running]) -> None:
    c, running = cluster
    session = TaskExec(c, running.task_id, ["echo", "hi"])
    assert session.run() == 0
    assert bytes(session.out) == b"hi\n" and bytes(session.err) == b""
    # A failing command's status comes back as it is.
    failing = TaskExec(c, running.task_id, ["sh", "-c", "echo oops >&2; exit 3"])
    assert failing.run() == 3 and bytes(failing.err) == b"oops\n"


def test_interactive_exec_feeds_stdin_to_the_command(cluster: tuple[Cluster, Running]) -> None:
    c, running = cluster
    session = TaskExec(c, running.task_id, ["cat"], stdin=b"ping\n")
    assert session.run() == 0
    assert bytes(session.out) == b"ping\n"


def test_a_session_is_inside_the_tasks_container(cluster: tuple[Cluster, Running]) -> None:
    """Same cgroups, same user, same working directory (its sandbox) and environment as the
    task itself, whose process the session entered."""
    c, running = cluster
    session = TaskExec(c, running.task_id, ["sh", "-c", "cat /proc/self/cgroup; id -u; pwd; "
                                                        "echo $MESOS_SANDBOX"])
    assert session.run() == 0
    lines = bytes(session.out).decode().splitlines()
    state = get_json(f"http://127.0.0.1:{c.agent_ports[0]}/state")
    executor = state["frameworks"][0]["executors"][0]
    assert lines[-2] == executor["directory"] and lines[-1] == executor["directory"]
    task_pid = _task_pid(executor["directory"])
    with open(f"/proc/{task_pid}/cgroup") as task_cgroups:
        assert lines[:-3] == task_cgroups.read().splitlines()
    assert lines[-3] == str(os.stat(f"/proc/{task_pid}").st_uid)


def _task_pid(sandbox: str) -> int:
    """The task's shell: the process whose working directory is the sandbox and that runs
    ``sleep 3600``'s parent command."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as file:
                cmdline = file.read()
            if os.readlink(f"/proc/{name}/cwd") == sandbox and b"hello-out" in cmdline:
                return int(name)
        except OSError:
            continue
    raise AssertionError("the task's process is not found")


STATE_CALLS = {
    "GET_HEALTH": "get_health", "GET_FLAGS": "get_flags", "GET_VERSION": "get_version",
    "GET_METRICS": "get_metrics", "GET_LOGGING_LEVEL": "get_logging_level",
    "GET_STATE": "get_state", "GET_CONTAINERS": "get_containers",
    "GET_FRAMEWORKS": "get_frameworks", "GET_EXECUTORS": "get_executors",
    "GET_TASKS": "get_tasks", "GET_AGENT": "get_agent", "GET_OPERATIONS": "get_operations",
}


def test_every_state_call_in_json_and_protobuf(cluster: tuple[Cluster, Running]) -> None:
    c, running = cluster
    url = agent_api(c)
    for name, field in STATE_CALLS.items():
        answer = requests.post(url, json={"type": name}, timeout=10)
        assert answer.status_code == 200, (name, answer.text)
        as_json = answer.json()
        assert as_json["type"] == name and field in as_json, name
        call = Call(type=Call.Type.Value(name))
        answer = requests.post(url, data=call.SerializeToString(), timeout=10, headers={
            "Content-Type": "application/x-protobuf", "Accept": "application/x-protobuf"})
        assert answer.status_code == 200, (name, answer.text)
        message = agent_pb2.Response.FromString(answer.content)
        assert field in [f.name for f, _ in message.ListFields()], name
        if name == "GET_TASKS":
            assert [t.task_id.value for t in message.get_tasks.launched_tasks] == \
                [running.task_id]
        if name == "GET_CONTAINERS":
            assert message.get_containers.containers[0].container_id.value == \
                parent_of(c, running.task_id)["value"]
        if name == "GET_AGENT":
            assert message.get_agent.agent_info.id.value == running.agent_id
        if name == "GET_HEALTH":
            assert message.get_health.healthy


def test_files_and_logging_calls(cluster: tuple[Cluster, Running]) -> None:
    c, _ = cluster
    url = agent_api(c)
    sandbox = get_json(f"http://127.0.0.1:{c.agent_ports[0]}/state")[
        "frameworks"][0]["executors"][0]["directory"]
    listed = requests.post(url, json={"type": "LIST_FILES", "list_files": {"path": sandbox}},
                           timeout=10).json()["list_files"]["file_infos"]
    assert {os.path.basename(f["path"]) for f in listed} >= {"stdout", "stderr"}
    call = Call(type=Call.READ_FILE)
    call.read_file.path = os.path.join(sandbox, "stdout")
    call.read_file.offset = 0
    answer = requests.post(url, data=call.SerializeToString(), timeout=10, headers={
        "Content-Type": "application/x-protobuf", "Accept": "application/x-protobuf"})
    read = agent_pb2.Response.FromString(answer.content).read_file
    assert b"hello-out" in read.data and read.size >= len(read.data)
    assert requests.post(url, json={"type": "SET_LOGGING_LEVEL", "set_logging_level": {
        "level": 1, "duration": {"nanoseconds": 10**9}}}, timeout=10).status_code == 200
    level = requests.post(url, json={"type": "GET_LOGGING_LEVEL"}, timeout=10).json()
    assert level["get_logging_level"]["level"] == 1


@pytest.mark.parametrize(("body", "headers", "status", "message"), [
    ({"type": "LAUNCH_NESTED_CONTAINER_SESSION", "launch_nested_container_session": {
        "container_id": {"value": "x", "parent": {"value": "nope"}},
        "command": {"value": "true"}}}, RECORDIO, 404, "not running"),
    ({"type": "LAUNCH_NESTED_CONTAINER_SESSION", "launch_nested_container_session": {
        "container_id": {"value": "x"}, "command": {"value": "true"}}}, RECORDIO, 400,
     "names no parent"),
    ({"type": "LAUNCH_NESTED_CONTAINER_SESSION", "launch_nested_container_session": {
        "container_id": {"value": "..", "parent": {"value": "nope"}},
        "command": {"value": "true"}}}, RECORDIO, 400, "invalid"),
    ({"type": "LAUNCH_NESTED_CONTAINER_SESSION", "launch_nested_container_session": {
        "container_id": {"value": "x", "parent": {"value": "p", "parent": {"value": "q"}}},
        "command": {"value": "true"}}}, RECORDIO, 400, "nest one level"),
    ({"type": "LAUNCH_NESTED_CONTAINER_SESSION", "launch_nested_container_session": {
        "container_id": {"value": "x", "parent": {"value": "p"}},
        "command": {"value": "true"}}}, {"Accept": "application/json"}, 406,
     "application/recordio"),
    ({"type": "ATTACH_CONTAINER_INPUT"}, {}, 415, "is a stream"),
    ({"type": "WAIT_CONTAINER", "wait_container": {
        "container_id": {"value": "x", "parent": {"value": "p"}}}}, {}, 404, "not known"),
    ({"type": "KILL_CONTAINER", "kill_container": {
        "container_id": {"value": "x", "parent": {"value": "p"}}, "signal": 99}}, {}, 400,
     "signal number"),
    ({"type": "LIST_FILES", "list_files": {"path": "/etc"}}, {}, 403, "outside"),
    ({"type": "READ_FILE", "read_file": {"path": "/frameworks/../../etc/passwd"}}, {}, 403,
     "'..' is not allowed"),
    ({"type": "LAUNCH_CONTAINER"}, {}, 501, "LAUNCH_CONTAINER is not implemented"),
])
def test_bad_calls_say_what_is_wrong(cluster: tuple[Cluster, Running], body: dict[str, Any],
                                     headers: dict[str, str], status: int,
                                     message: str) -> None:
    c, _ = cluster
    answer = requests.post(agent_api(c), json=body, headers=headers, timeout=10)
    assert answer.status_code == status, answer.text
    assert message in answer.text


def test_input_for_a_task_without_tty_and_a_garbage_stream_are_refused(
        cluster: tuple[Cluster, Running]) -> None:
    c, running = cluster
    headers = {"Content-Type": "application/recordio",
               "Message-Content-Type": "application/json"}
    first = {"type": "ATTACH_CONTAINER_INPUT", "attach_container_input": {
        "type": "CONTAINER_ID", "container_id": parent_of(c, running.task_id)}}
    answer = requests.post(agent_api(c), data=recordio.encode(json.dumps(first).encode()),
                           headers=headers, timeout=10)
    # Mesos's answer for a container without a TTY, which its CLI's first connection expects.
    assert answer.status_code == 500
    assert answer.text == "I/O switchboard server was disabled for this container"
    answer = requests.post(agent_api(c), data=b"99999999999999999999999\n{}",
                           headers=headers, timeout=10)
    assert answer.status_code == 400 and "RecordIO" in answer.text
