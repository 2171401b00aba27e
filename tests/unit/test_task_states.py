"""The task state table: live states move freely (never back to STAGING), terminal ones never."""

from __future__ import annotations

import pytest

from agent_runtime.proto import mesos_pb2
from agent_runtime.task_states import (
    TERMINAL_STATES,
    TRANSITIONS,
    IllegalTransition,
    TaskState,
    can_move,
    transition,
)

ALL: list[TaskState] = list(mesos_pb2.TaskState.values())
LIVE = [s for s in ALL if s not in TERMINAL_STATES]


def _task(state: TaskState) -> mesos_pb2.Task:
    task = mesos_pb2.Task(name="t", state=state)
    task.task_id.value = "t1"
    return task


def test_the_table_covers_every_state() -> None:
    assert set(TRANSITIONS) == set(ALL)


@pytest.mark.parametrize("terminal", sorted(TERMINAL_STATES), ids=mesos_pb2.TaskState.Name)
def test_nothing_leaves_a_terminal_state(terminal: TaskState) -> None:
    for state in ALL:
        task = _task(terminal)
        with pytest.raises(IllegalTransition, match="illegal move"):
            transition(task, state)
        assert task.state == terminal


@pytest.mark.parametrize("live", LIVE, ids=mesos_pb2.TaskState.Name)
def test_a_live_state_moves_anywhere_but_back_to_staging(live: TaskState) -> None:
    for state in ALL:
        task = _task(live)
        if state == mesos_pb2.TASK_STAGING:
            assert not can_move(live, state)
            with pytest.raises(IllegalTransition):
                transition(task, state)
            continue
        transition(task, state)
        assert task.state == state
