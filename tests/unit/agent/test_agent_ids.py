"""A RunTask whose IDs would become hostile path components, sent straight to the agent (as a
master with a hole in its validation would): refused before any directory is made."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent_runtime.agent.agent import Agent
from agent_runtime.proto import internal_pb2, mesos_pb2
from tests.unit.agent.fakes import make_agent

ESCAPE = f"/tmp/agent-runtime-escape-{secrets.token_hex(4)}"
HOSTILE = ["..", "../../..", ESCAPE, "a\x00b", "\N{GRINNING FACE}" * 200,
           "bidi\u202e"]
NAMES = ["dot-dot", "up-three", "absolute", "nul", "emoji-800-bytes", "bidi"]


@pytest.fixture
async def agent(tmp_path: Path) -> AsyncIterator[tuple[Agent, list[internal_pb2.AgentMessage]]]:
    sent: list[internal_pb2.AgentMessage] = []
    work_dir = tmp_path / "work"
    work_dir.mkdir()
    agent = make_agent(str(work_dir), sent)
    yield agent, sent
    await agent.checkpoint_writer.flush()
    agent.checkpoint_writer.close()


def _run(framework_id: str, task_id: str = "t1", executor_id: str | None = None
         ) -> tuple[mesos_pb2.FrameworkInfo, mesos_pb2.TaskInfo]:
    framework = mesos_pb2.FrameworkInfo(user="u", name="f", checkpoint=True)
    framework.id.value = framework_id
    task = mesos_pb2.TaskInfo(name="t")
    task.task_id.value = task_id
    task.agent_id.value = "A-S0"
    if executor_id is None:
        task.command.value = "true"
    else:
        task.executor.executor_id.value = executor_id
        task.executor.command.value = "true"
    return framework, task


def _tree(root: Path) -> set[str]:
    return {os.path.relpath(os.path.join(d, n), root)
            for d, dirs, names in os.walk(root) for n in dirs + names}


@pytest.mark.parametrize("bad", HOSTILE, ids=NAMES)
async def test_a_hostile_framework_id_is_dropped(
        agent: tuple[Agent, list[internal_pb2.AgentMessage]], tmp_path: Path, bad: str,
        caplog: pytest.LogCaptureFixture) -> None:
    daemon, sent = agent
    await daemon.run_task(*_run(bad))
    assert daemon.table.frameworks() == [] and sent == []
    assert "invalid framework ID" in caplog.text
    # Nothing but what the agent made at start (the key that signs executor tokens).
    assert _tree(tmp_path) == {"work", "work/meta", "work/meta/executor_secret_key"}
    assert not os.path.exists(ESCAPE)


@pytest.mark.parametrize("bad", HOSTILE, ids=NAMES)
@pytest.mark.parametrize("field", ["task", "executor"])
async def test_a_hostile_task_or_executor_id_fails_the_task(
        agent: tuple[Agent, list[internal_pb2.AgentMessage]], tmp_path: Path, bad: str,
        field: str) -> None:
    daemon, sent = agent
    run = _run("A-0000", task_id=bad) if field == "task" else _run("A-0000", executor_id=bad)
    await daemon.run_task(*run)
    (message,) = sent
    status = message.status_update.status
    assert status.state == mesos_pb2.TASK_ERROR
    assert status.reason == mesos_pb2.TaskStatus.REASON_TASK_INVALID
    assert f"{field.capitalize()} ID is invalid" in status.message
    # Nothing but what the agent made at start (the key that signs executor tokens).
    assert _tree(tmp_path) == {"work", "work/meta", "work/meta/executor_secret_key"}
    assert not os.path.exists(ESCAPE)
