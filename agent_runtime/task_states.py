"""Task states every daemon and tool agrees on."""

from __future__ import annotations

from agent_runtime.proto import mesos_pb2

# The states that end a task, as Mesos counts them (`protobuf::isTerminalState`).
TERMINAL_STATES = frozenset(
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
