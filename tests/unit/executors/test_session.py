"""The executor session: what every executor of ours does the same whatever runs its task,
driven here with a runner that records what it is asked."""

from __future__ import annotations

from typing import Any

import pytest

from agent_runtime.executors.command import CommandTask, describe_exit
from agent_runtime.executors.session import ExecutorSession, parse_duration, policy_grace

ENV = {"MESOS_AGENT_ENDPOINT": "127.0.0.1:1", "MESOS_FRAMEWORK_ID": "F",
       "MESOS_EXECUTOR_ID": "t", "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": "7secs"}


class Runner:
    kind = "test"
    groups = False

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.running = False

    def launch(self, task: dict[str, Any]) -> None:
        self.calls.append(("launch", task["task_id"]["value"]))
        self.running = True

    def launched(self, task_id: str) -> bool:
        return self.running

    def kill(self, task_id: str, grace: float | None) -> None:
        self.calls.append(("kill", grace))


def _session() -> tuple[ExecutorSession, list[str]]:
    session = ExecutorSession(dict(ENV))
    sent: list[str] = []

    def update(state: str, message: str | None = None, reason: str | None = None, *,
               task_id: str | None = None, **fields: Any) -> None:
        sent.append(f"{state}: {message}")
        if state in ("TASK_KILLED", "TASK_FINISHED") or (state == "TASK_ERROR"
                                                          and task_id in session.tasks):
            session.terminals[task_id or "t"] = "terminal"

    session.update = update  # type: ignore[method-assign]
    return session, sent


def _launch(task_id: str) -> dict[str, Any]:
    return {"type": "LAUNCH", "launch": {"task": {"task_id": {"value": task_id}}}}


def test_one_task_per_executor_and_a_second_launch_is_an_error() -> None:
    session, sent = _session()
    runner = Runner()
    assert session.handle(runner, _launch("t"))  # type: ignore[arg-type]
    assert session.handle(runner, _launch("u"))  # type: ignore[arg-type]
    assert runner.calls == [("launch", "t")]
    assert sent == ["TASK_ERROR: Attempted to run multiple tasks using a test executor"]
    assert session.task == {"task_id": {"value": "t"}}


def test_kills_go_to_the_runner_with_their_grace_and_not_before_the_task_runs() -> None:
    session, sent = _session()
    runner = Runner()
    kill = {"type": "KILL", "kill": {"kill_policy": {"grace_period": {"nanoseconds": 2 * 10**9}}}}
    session.handle(runner, kill)  # type: ignore[arg-type]
    assert runner.calls == [] and sent == []  # no task yet: nothing to kill
    session.handle(runner, _launch("t"))  # type: ignore[arg-type]
    session.handle(runner, kill)  # type: ignore[arg-type]
    session.handle(runner, {"type": "KILL"})  # type: ignore[arg-type]
    assert session.handle(runner, {"type": "SHUTDOWN"})  # type: ignore[arg-type]
    assert runner.calls == [("launch", "t"), ("kill", 2.0), ("kill", None), ("kill", 7.0)]


def test_a_kill_before_the_task_runs_is_reported_and_shutdown_then_leaves() -> None:
    session, sent = _session()
    runner = Runner()
    session.tasks["t"] = {"task_id": {"value": "t"}}
    assert not session.handle(runner, {"type": "SHUTDOWN"})  # type: ignore[arg-type]
    assert sent == ["TASK_KILLED: Task killed before it started"]


def test_the_acknowledgement_of_the_terminal_update_ends_the_session() -> None:
    session, _ = _session()
    runner = Runner()
    session.tasks["t"] = {"task_id": {"value": "t"}}
    session.terminals["t"] = "u2"
    session.unacknowledged = {"u1": {}, "u2": {}}
    ack = {"type": "ACKNOWLEDGED", "acknowledged": {"uuid": "u1"}}
    assert session.handle(runner, ack)  # type: ignore[arg-type]
    ack["acknowledged"]["uuid"] = "u2"  # type: ignore[index]
    assert not session.handle(runner, ack)  # type: ignore[arg-type]
    assert session.unacknowledged == {} and session.acknowledged_any


@pytest.mark.parametrize(("text", "seconds"), [("5secs", 5.0), ("100ms", 0.1), ("2mins", 120.0),
                                               ("", 9.0), ("xsecs", 9.0)])
def test_durations_as_the_agent_writes_them(text: str, seconds: float) -> None:
    assert parse_duration(text, 9.0) == pytest.approx(seconds)


def test_a_command_tasks_exit_becomes_its_terminal_state() -> None:
    runner = CommandTask(ExecutorSession(dict(ENV)))
    assert runner.exited(0) == ("TASK_FINISHED", "Command exited with status 0", None)
    assert runner.exited(3) == ("TASK_FAILED", "Command exited with status 3", None)
    runner.killing = True
    assert runner.exited(-15) == ("TASK_KILLED", describe_exit(-15), None)
    assert describe_exit(-15) == "Command terminated with signal Terminated"
    assert policy_grace(None) is None and policy_grace({"grace_period": {"nanoseconds": 0}}) == 0.0
