"""The docker executor: its log demultiplexer (the engine's 8-byte frame headers, split
anywhere), and what it makes of a launch an agent restart interrupted."""

from __future__ import annotations

import os
from typing import Any

from agent_runtime.executors.docker_executor import DockerTask, LogDemux, NoSuchContainer
from agent_runtime.executors.session import ExecutorSession


def frame(stream: int, payload: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


def test_frames_go_to_their_stream_even_when_split_across_reads() -> None:
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    data = frame(1, b"hello ") + frame(2, b"oops\n") + frame(1, b"world\n") + frame(1, b"")
    demux = LogDemux(out_w, err_w)
    for index in range(0, len(data), 3):  # 3-byte reads split headers and payloads
        demux.feed(data[index:index + 3])
    os.close(out_w)
    os.close(err_w)
    assert os.read(out_r, 100) == b"hello world\n"
    assert os.read(err_r, 100) == b"oops\n"
    assert demux.buffer == b""
    os.close(out_r)
    os.close(err_r)


def executor(inspected: dict[str, Any] | None) -> tuple[DockerTask, list[str]]:
    """A docker task runner whose engine answers ``inspected`` (None: no such container)."""
    env = {"MESOS_AGENT_ENDPOINT": "127.0.0.1:1", "MESOS_FRAMEWORK_ID": "F",
           "MESOS_EXECUTOR_ID": "t", "MESOS_CONTAINER_NAME": "mesos-c1", "MESOS_CHECKPOINT": "1"}
    session = ExecutorSession(env)
    session.tasks["t"] = {"task_id": {"value": "t"}}
    runner = DockerTask(session)
    sent: list[str] = []

    def inspect(name: str) -> dict[str, Any]:
        if inspected is None:
            raise NoSuchContainer(name)
        return inspected

    def update(state: str, message: str | None = None, reason: str | None = None,
               **fields: Any) -> None:
        sent.append(f"{state} {reason}")

    runner.engine.inspect = inspect  # type: ignore[method-assign]
    session.update = update  # type: ignore[method-assign]
    return runner, sent


def test_a_launch_the_dead_agent_left_half_done_fails_after_resubscribing() -> None:
    for inspected in (None, {"State": {"Status": "created", "StartedAt": "0001-01-01T00:00:00Z"}}):
        runner, sent = executor(inspected)
        runner.resubscribed()
        assert sent == ["TASK_FAILED REASON_CONTAINER_LAUNCH_FAILED"]


def test_a_container_that_started_while_the_agent_was_away_is_left_to_its_watchers() -> None:
    runner, sent = executor({"State": {"Status": "running",
                                       "StartedAt": "2026-01-01T00:00:00.1Z"}})
    runner.resubscribed()
    assert sent == []
    runner.started = True  # and one that had started before is not looked at at all
    runner.engine.inspect = None  # type: ignore[assignment]
    runner.resubscribed()
    assert sent == []
