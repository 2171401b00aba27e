"""The agent's records of frameworks, executors and tasks."""

from __future__ import annotations

import asyncio
import collections
import enum
from dataclasses import dataclass, field

from agent_runtime.containerizer.launcher import Process
from agent_runtime.proto import executor_pb2, mesos_pb2
from agent_runtime.streams import EventStream


class ExecutorState(enum.Enum):
    """Executor life cycle::

        REGISTERING --subscribe--> RUNNING --shutdown--> TERMINATING --exit--> TERMINATED
             |                                                                      ^
             +-------------------------- exit / registration timeout --------------+
    """

    REGISTERING = "REGISTERING"
    RUNNING = "RUNNING"
    TERMINATING = "TERMINATING"
    TERMINATED = "TERMINATED"


_TRANSITIONS = {
    ExecutorState.REGISTERING: {ExecutorState.RUNNING, ExecutorState.TERMINATING,
                                ExecutorState.TERMINATED},
    ExecutorState.RUNNING: {ExecutorState.TERMINATING, ExecutorState.TERMINATED},
    ExecutorState.TERMINATING: {ExecutorState.TERMINATED},
    ExecutorState.TERMINATED: set(),
}


@dataclass(slots=True)
class Executor:
    framework_id: str
    info: mesos_pb2.ExecutorInfo
    container_id: str
    directory: str
    command_executor: bool
    state: ExecutorState = ExecutorState.REGISTERING
    process: Process | None = None
    stream: EventStream | None = None
    queued: dict[str, mesos_pb2.TaskInfo] = field(default_factory=dict)
    launched: dict[str, mesos_pb2.Task] = field(default_factory=dict)
    completed: collections.deque[mesos_pb2.Task] = field(
        default_factory=lambda: collections.deque(maxlen=200)
    )
    killed: set[str] = field(default_factory=set)
    timer: asyncio.TimerHandle | None = None
    # Events held back, in order, until ``gate`` (a checkpoint they depend on) is on disk.
    held: list[executor_pb2.Event] = field(default_factory=list)
    gate: asyncio.Future[None] | None = None

    @property
    def id(self) -> str:
        return str(self.info.executor_id.value)

    def transition(self, state: ExecutorState) -> None:
        if state not in _TRANSITIONS[self.state]:
            raise ValueError(f"executor {self.id}: illegal move {self.state} -> {state}")
        self.state = state



@dataclass(slots=True)
class FrameworkRecord:
    info: mesos_pb2.FrameworkInfo
    executors: dict[str, Executor] = field(default_factory=dict)
    completed_executors: collections.deque[Executor] = field(
        default_factory=lambda: collections.deque(maxlen=50)
    )
    removed: bool = False  # shut down by the master, which will acknowledge nothing more

    @property
    def id(self) -> str:
        return str(self.info.id.value)
