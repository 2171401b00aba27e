"""Health checks and checks (executors/checks.py) against real probes on loopback: an HTTP
server, a listening socket, commands; and the session's side (TASK_KILLING, healthy, a kill on
failure, check_status) driven with a recording runner."""

from __future__ import annotations

import http.server
import queue
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_runtime.executors.checks import CheckThread, Probe, local_command
from agent_runtime.executors.session import ExecutorSession

ENV = {"MESOS_AGENT_ENDPOINT": "127.0.0.1:1", "MESOS_FRAMEWORK_ID": "F",
       "MESOS_EXECUTOR_ID": "t"}
FAST = {"delay_seconds": 0, "interval_seconds": 0.05, "timeout_seconds": 1,
        "grace_period_seconds": 0}


class Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/ok" else 503)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def server() -> Iterator[int]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield int(httpd.server_address[1])
    httpd.shutdown()
    httpd.server_close()


def _probe(spec: dict[str, Any], health: bool = True) -> Probe:
    return Probe(spec, health, local_command(dict(ENV), "/"), "127.0.0.1")


def test_http_probes_succeed_on_2xx_3xx_only(server: int) -> None:
    ok, status, _ = _probe({"type": "HTTP", "http": {"port": server, "path": "/ok"}}
                           ).try_once(1)
    assert ok and status == {"type": "HTTP", "http": {"status_code": 200}}
    ok, status, detail = _probe({"type": "HTTP", "http": {"port": server, "path": "/x"}}
                                ).try_once(1)
    assert not ok and status["http"] == {"status_code": 503} and "answered 503" in detail


def test_tcp_and_command_probes() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert _probe({"type": "TCP", "tcp": {"port": port}}).try_once(1)[0]
    closed = _probe({"type": "TCP", "tcp": {"port": port}}).try_once(1)
    assert closed[:2] == (False, {"type": "TCP", "tcp": {"succeeded": False}})
    assert _probe({"type": "COMMAND", "command": {"value": "exit 0"}}).try_once(1)[0]
    check = _probe({"type": "COMMAND", "command": {"command": {"value": "exit 4"}}},
                   health=False).try_once(1)
    assert check[1] == {"type": "COMMAND", "command": {"exit_code": 4}}
    # A command that outlives its timeout is killed and counts as a failure.
    slow = _probe({"type": "COMMAND", "command": {"value": "sleep 30"}}).try_once(0.2)
    assert slow[:2] == (False, {"type": "COMMAND", "command": {}})


def _events(spec: dict[str, Any], health: bool, count: int) -> list[Any]:
    events: queue.Queue[Any] = queue.Queue()
    thread = CheckThread("t", {**FAST, **spec}, health, events,
                         local_command(dict(ENV), "/"), "127.0.0.1")
    thread.start()
    try:
        return [events.get(timeout=10) for _ in range(count)]
    finally:
        thread.stop()


def test_a_failing_health_check_reports_unhealthy_and_asks_for_a_kill_at_the_limit() -> None:
    got = _events({"type": "COMMAND", "command": {"value": "exit 1"},
                   "consecutive_failures": 2}, True, 2)
    assert [(kind, e["healthy"], e["kill"]) for kind, e in got] == [
        ("health", False, False), ("health", False, True)]


def test_failures_within_the_grace_period_are_not_counted(tmp_path: Path) -> None:
    # Fails until the flag appears (0.3 s, several probes), then passes: inside a 5 s grace
    # period only "healthy" is reported; with none, the failures would come first.
    flag = tmp_path / "up"
    timer = threading.Timer(0.3, flag.touch)
    timer.start()
    got = _events({"type": "COMMAND", "grace_period_seconds": 5,
                   "command": {"value": f"test -e {flag}"}}, True, 1)
    timer.join()
    assert got == [("health", {"task_id": "t", "healthy": True, "kill": False,
                               "message": "command exited with status 0"})]


def test_a_check_reports_only_changes() -> None:
    (first,) = _events({"type": "COMMAND", "command": {"command": {"value": "exit 2"}}},
                       False, 1)
    assert first == ("check", {"task_id": "t", "check_status": {
        "type": "COMMAND", "command": {"exit_code": 2}}})


class Runner:
    kind = "test"
    groups = False

    def __init__(self) -> None:
        self.kills: list[float | None] = []

    def launch(self, task: dict[str, Any]) -> None:
        return None

    def launched(self, task_id: str) -> bool:
        return True

    def kill(self, task_id: str, grace: float | None) -> None:
        self.kills.append(grace)


def _session() -> tuple[ExecutorSession, list[dict[str, Any]]]:
    session = ExecutorSession(dict(ENV))
    sent: list[dict[str, Any]] = []

    def post(call_type: str, **fields: Any) -> None:
        sent.append(fields["update"]["status"])

    session.agent.post = post  # type: ignore[method-assign]
    return session, sent


def _subscribed(killing: bool) -> dict[str, Any]:
    capabilities = [{"type": "TASK_KILLING_STATE"}] if killing else []
    return {"type": "SUBSCRIBED", "subscribed": {"framework_info": {
        "capabilities": capabilities}}}


def test_task_killing_only_for_frameworks_that_ask_and_health_kills_end_unhealthy() -> None:
    for killing in (True, False):
        session, sent = _session()
        runner = Runner()
        session.handle(runner, _subscribed(killing))  # type: ignore[arg-type]
        session.handle(runner, {"type": "LAUNCH", "launch": {  # type: ignore[arg-type]
            "task": {"task_id": {"value": "t"}}}})
        session._health(runner, {"task_id": "t", "healthy": False,  # type: ignore[arg-type]
                                 "kill": True, "message": "down"})
        states = [(s["state"], s.get("healthy")) for s in sent]
        assert states == [("TASK_RUNNING", False)] + \
            ([("TASK_KILLING", None)] if killing else [])
        assert runner.kills == [None]  # the task's own kill policy decides the grace
        session.update("TASK_KILLED", "killed")
        assert sent[-1]["healthy"] is False
        # Nothing after the end: a late health result is dropped.
        session._health(runner, {"task_id": "t", "healthy": True,  # type: ignore[arg-type]
                                 "kill": False, "message": "up"})
        assert sent[-1]["state"] == "TASK_KILLED"


def test_a_task_group_is_refused_by_a_single_task_executor() -> None:
    session, sent = _session()
    runner = Runner()
    group = {"type": "LAUNCH_GROUP", "launch_group": {"task_group": {"tasks": [
        {"task_id": {"value": "a"}}, {"task_id": {"value": "b"}}]}}}
    session.handle(runner, group)  # type: ignore[arg-type]
    assert [(s["task_id"]["value"], s["state"]) for s in sent] == [
        ("a", "TASK_ERROR"), ("b", "TASK_ERROR")]
    assert "task group using a test executor" in sent[0]["message"]
