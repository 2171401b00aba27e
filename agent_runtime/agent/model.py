"""The agent's records of frameworks, executors and tasks (held by ``executor_table.py``)."""

from __future__ import annotations

import asyncio
import collections
import enum
from dataclasses import dataclass, field

from agent_runtime.containerizer.launcher import Process
from agent_runtime.executor_kind import ExecutorKind
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
    kind: ExecutorKind
    state: ExecutorState = ExecutorState.REGISTERING
    process: Process | None = None
    stream: EventStream | None = None
    queued: dict[str, mesos_pb2.TaskInfo] = field(default_factory=dict)
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)  # queued task groups
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

    @property
    def command_executor(self) -> bool:
        """The agent's own executor, running its one task's command (COMMAND or DOCKER)."""
        return self.kind.generated

    def launch(self, task: mesos_pb2.TaskInfo, agent_id: str, user: str | None
               ) -> mesos_pb2.Task:
        """The task handed to the executor: its record, STAGING, among the launched ones."""
        launched = mesos_pb2.Task(name=task.name, state=mesos_pb2.TASK_STAGING)
        launched.task_id.CopyFrom(task.task_id)
        launched.framework_id.value = self.framework_id
        launched.executor_id.value = self.id
        launched.agent_id.value = agent_id
        launched.resources.extend(task.resources)
        if user is not None:
            launched.user = user
        self.launched[task.task_id.value] = launched
        return launched

    def transition(self, state: ExecutorState) -> None:
        if state not in _TRANSITIONS[self.state]:
            raise ValueError(f"executor {self.id}: illegal move {self.state} -> {state}")
        self.state = state

    def send(self, event: executor_pb2.Event, after: asyncio.Future[None] | None = None
             ) -> None:
        """Send ``event`` once ``after`` (a checkpoint) is on disk, and after every event held
        back before it: events reach an executor in the order sent."""
        if after is not None and not after.done():
            self.gate = after  # the latest checkpoint asked: done last
            after.add_done_callback(self._release)
        if self.gate is not None:
            self.held.append(event)
        elif self.stream is not None:
            self.stream.send(event)

    def _release(self, done: asyncio.Future[None]) -> None:
        if self.gate is not done:
            return  # a later checkpoint holds the events
        # Sent even if the checkpoint failed (the writer logged it): held for good is worse.
        self.gate = None
        held, self.held = self.held, []
        for event in held:
            if self.stream is not None:
                self.stream.send(event)


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
