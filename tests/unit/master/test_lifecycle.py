"""The master's transition tables: every state has a row, the moves the docstrings draw are
allowed, and illegal ones (leaving COMPLETED, REMOVED or a terminal task state) raise."""

from __future__ import annotations

import itertools

import pytest

from agent_runtime.master.lifecycle import (
    AGENT_TRANSITIONS,
    FRAMEWORK_TRANSITIONS,
    AgentState,
    FrameworkState,
    IllegalTransition,
)
from agent_runtime.master.model import Task
from agent_runtime.proto import mesos_pb2
from agent_runtime.resources import parse
from agent_runtime.task_states import TERMINAL_STATES, TaskState
from tests.unit.master.fakes import add_agent, add_framework, parts

F = FrameworkState
A = AgentState


def test_every_state_has_a_row() -> None:
    assert set(FRAMEWORK_TRANSITIONS) == set(FrameworkState)
    assert set(AGENT_TRANSITIONS) == set(AgentState)


def test_framework_moves() -> None:
    framework = add_framework(parts())
    for state in (F.DISCONNECTED, F.ACTIVE, F.ACTIVE, F.COMPLETED):
        framework.transition(state)
    assert framework.state is F.COMPLETED
    assert (framework.active, framework.connected, framework.recovered) == (False, False, False)
    for state in FrameworkState:
        with pytest.raises(IllegalTransition, match="illegal move COMPLETED"):
            framework.transition(state)


@pytest.mark.parametrize(("start", "to"), [
    (F.RECOVERED, F.DISCONNECTED), (F.RECOVERED, F.RECOVERED),
    (F.DISCONNECTED, F.DISCONNECTED), (F.ACTIVE, F.RECOVERED),
])
def test_illegal_framework_moves_raise(start: FrameworkState, to: FrameworkState) -> None:
    framework = add_framework(parts())
    framework.state = start
    with pytest.raises(IllegalTransition):
        framework.transition(to)
    assert framework.state is start


def test_agent_moves() -> None:
    agent = add_agent(parts())
    for state in (A.REGISTERED, A.DISCONNECTED, A.REGISTERED, A.UNREACHABLE, A.REGISTERED,
                  A.DISCONNECTED, A.UNREACHABLE, A.REMOVED):
        agent.transition(state)
    assert (agent.connected, agent.active) == (False, False)
    for state in AgentState:
        with pytest.raises(IllegalTransition, match="illegal move REMOVED"):
            agent.transition(state)


@pytest.mark.parametrize(("start", "to"), [
    (A.UNREACHABLE, A.DISCONNECTED), (A.UNREACHABLE, A.UNREACHABLE),
    (A.DISCONNECTED, A.DISCONNECTED),
])
def test_illegal_agent_moves_raise(start: AgentState, to: AgentState) -> None:
    agent = add_agent(parts())
    agent.state = start
    with pytest.raises(IllegalTransition):
        agent.transition(to)


def _task(state: TaskState) -> Task:
    info = mesos_pb2.TaskInfo(name="t")
    info.task_id.value = "t"
    return Task(info, "F1", "S1", "*", parse("cpus:1"), state=state)


def test_a_task_never_leaves_a_terminal_state() -> None:
    for terminal, other in itertools.product(TERMINAL_STATES, mesos_pb2.TaskState.values()):
        task = _task(terminal)
        with pytest.raises(IllegalTransition, match="illegal move"):
            task.transition(other)
        assert task.state == terminal


def test_a_live_task_moves_on_and_never_back_to_staging() -> None:
    task = _task(mesos_pb2.TASK_STAGING)
    for state in (mesos_pb2.TASK_STARTING, mesos_pb2.TASK_RUNNING, mesos_pb2.TASK_RUNNING,
                  mesos_pb2.TASK_KILLING, mesos_pb2.TASK_KILLED):
        task.transition(state)
    assert task.terminal
    running = _task(mesos_pb2.TASK_RUNNING)
    with pytest.raises(IllegalTransition):
        running.transition(mesos_pb2.TASK_STAGING)
