"""Task states every daemon and tool agrees on, and the one table of moves between them.

::

    STAGING --> STARTING --> RUNNING --> KILLING --+--> FINISHED | FAILED | KILLED | ERROR
       |           |           ^  |         |      |    LOST | DROPPED | GONE
       |           |           |  v         |      |    GONE_BY_OPERATOR   (terminal: no way out)
       +-----------+--------> UNREACHABLE / UNKNOWN +
                   (any live state may go to any state but STAGING)

A task is created STAGING and nothing returns to it. A live (non-terminal) state may move to
any other state, itself included (an executor's health checks repeat RUNNING; a partitioned
agent's UNREACHABLE task may come back RUNNING). A terminal state ends the task: as Mesos's
status update stream, nothing follows it, and :func:`transition` refuses to leave it.
"""

from __future__ import annotations

from typing import TypeAlias

from agent_runtime.errors import RuntimeErrorBase
from agent_runtime.proto import mesos_pb2

TaskState: TypeAlias = mesos_pb2.TaskState.ValueType
Reason: TypeAlias = mesos_pb2.TaskStatus.Reason.ValueType

# The states that end a task, as Mesos counts them (`protobuf::isTerminalState`).
TERMINAL_STATES: frozenset[TaskState] = frozenset(
    {
        mesos_pb2.TASK_FINISHED,
        mesos_pb2.TASK_FAILED,
        mesos_pb2.TASK_KILLED,
        mesos_pb2.TASK_ERROR,
        mesos_pb2.TASK_LOST,
        mesos_pb2.TASK_DROPPED,
        mesos_pb2.TASK_GONE,
        mesos_pb2.TASK_GONE_BY_OPERATOR,
    }
)

_ALL: frozenset[TaskState] = frozenset(mesos_pb2.TaskState.values())
# The table the docstring draws: from each state, the states it may move to.
TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    state: frozenset() if state in TERMINAL_STATES else _ALL - {mesos_pb2.TASK_STAGING}
    for state in _ALL
}


class IllegalTransition(RuntimeErrorBase):
    """A move the table does not allow: a bug in the caller, never bad input."""


def can_move(current: TaskState, new: TaskState) -> bool:
    return new in TRANSITIONS[current]


def transition(task: mesos_pb2.Task, state: TaskState) -> None:
    """Move ``task`` to ``state``; raises IllegalTransition when the table forbids it."""
    if state not in TRANSITIONS[task.state]:
        raise IllegalTransition(
            f"task {task.task_id.value}: illegal move {mesos_pb2.TaskState.Name(task.state)}"
            f" -> {mesos_pb2.TaskState.Name(state)}")
    task.state = state
