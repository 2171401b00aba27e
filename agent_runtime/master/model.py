"""The master's in-memory records: frameworks, agents, offers, tasks and custom executors.

Records only: their states move through ``transition()`` (tables in
:mod:`agent_runtime.master.lifecycle` and :mod:`agent_runtime.task_states`); the indexes between
them are kept by :class:`agent_runtime.master.book.MasterBook`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from agent_runtime.master.lifecycle import (
    AGENT_TRANSITIONS,
    FRAMEWORK_TRANSITIONS,
    AgentState,
    FrameworkState,
    move,
)
from agent_runtime.proto import internal_pb2, mesos_pb2
from agent_runtime.resources import Resources
from agent_runtime.streams import EventStream
from agent_runtime.task_states import TERMINAL_STATES, IllegalTransition, TaskState, can_move

log = logging.getLogger(__name__)
__all__ = ["TERMINAL_STATES", "Agent", "Executor", "ExecutorKey", "Framework", "Offer", "Task",
           "Timer"]

MAX_COMPLETED_TASKS = 1000
ExecutorKey = tuple[str, str, str]  # (agent id, framework id, executor id)


class Timer(Protocol):
    """What the master keeps of a timer it started: a way to cancel it (asyncio.TimerHandle)."""

    def cancel(self) -> None: ...


@dataclass(slots=True)
class Task:
    info: mesos_pb2.TaskInfo
    framework_id: str
    agent_id: str
    role: str
    resources: Resources
    state: TaskState = mesos_pb2.TASK_STAGING
    statuses: list[mesos_pb2.TaskStatus] = field(default_factory=list)
    # uuid of the update whose acknowledgement ends the task's life in the master
    terminal_uuid: bytes | None = None
    user: str = ""
    # Set while its agent is unreachable: the task may still run; frameworks are told
    # TASK_UNREACHABLE (PARTITION_AWARE) or TASK_LOST, and `state` keeps what was last known.
    unreachable_time: float | None = None
    # Its /master/state JSON and what it was rendered from (state_json.task_json): at 100,000
    # tasks, rendering each anew on every request is most of the endpoint's time.
    rendered: tuple[object, dict[str, Any]] | None = field(default=None, repr=False,
                                                         compare=False)
    # Its v1 operator API encodings (state_wire.py: protobuf and JSON bytes of mesos.v1.Task),
    # under the same key, for GET_STATE and GET_TASKS.
    wire: tuple[object, dict[str, bytes]] | None = field(default=None, repr=False,
                                                        compare=False)

    def transition(self, state: TaskState) -> None:
        """Every change of ``state`` comes here; IllegalTransition (a bug in the caller) when
        the shared table forbids it, e.g. leaving a terminal state."""
        if not can_move(self.state, state):
            raise IllegalTransition(
                f"task {self.task_id}: illegal move {mesos_pb2.TaskState.Name(self.state)} -> "
                f"{mesos_pb2.TaskState.Name(state)}")
        self.state = state

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    def reported_state(self, partition_aware: bool) -> TaskState:
        if self.unreachable_time is None:
            return self.state
        return mesos_pb2.TASK_UNREACHABLE if partition_aware else mesos_pb2.TASK_LOST

    @property
    def task_id(self) -> str:
        return str(self.info.task_id.value)

    @property
    def executor_id(self) -> str:
        return str(self.info.executor.executor_id.value) if self.info.HasField("executor") else ""


@dataclass(slots=True)
class Executor:
    """A custom executor the master knows on an agent: the ExecutorInfo its first task carried
    (``framework_id`` and allocation roles filled in), and what it holds besides its tasks.
    Command executors are the agent's own business and are not kept, as in Mesos."""

    info: mesos_pb2.ExecutorInfo
    agent_id: str
    role: str
    resources: Resources

    @property
    def framework_id(self) -> str:
        return str(self.info.framework_id.value)

    @property
    def executor_id(self) -> str:
        return str(self.info.executor_id.value)


@dataclass(slots=True)
class Offer:
    proto: mesos_pb2.Offer
    framework_id: str
    agent_id: str
    role: str
    resources: Resources
    timer: Timer | None = None


@dataclass(slots=True)
class Framework:
    id: str
    info: mesos_pb2.FrameworkInfo
    registered_time: float
    state: FrameworkState
    stream: EventStream | None = None
    unregistered_time: float = 0.0
    reregistered_time: float | None = None
    tasks: dict[str, Task] = field(default_factory=dict)
    completed_tasks: collections.deque[Task] = field(
        default_factory=lambda: collections.deque(maxlen=MAX_COMPLETED_TASKS)
    )
    offers: dict[str, Offer] = field(default_factory=dict)
    failover_timer: Timer | None = None
    heartbeat: asyncio.Task[None] | None = None
    suppressed_roles: set[str] = field(default_factory=set)
    # Totals of the state answers with the bags they were summed from (agent_views.summed).
    rendered: dict[str, tuple[object, Any]] = field(default_factory=dict, repr=False,
                                                    compare=False)

    def transition(self, state: FrameworkState) -> None:
        self.state = move(FRAMEWORK_TRANSITIONS, self.state, state, f"framework {self.id}")

    @property
    def connected(self) -> bool:
        return self.state is FrameworkState.ACTIVE

    @property
    def active(self) -> bool:
        return self.state is FrameworkState.ACTIVE

    @property
    def recovered(self) -> bool:
        """Known from an agent's report only: it has not subscribed to this master yet."""
        return self.state is FrameworkState.RECOVERED

    @property
    def roles(self) -> list[str]:
        if any(c.type == mesos_pb2.FrameworkInfo.Capability.MULTI_ROLE
               for c in self.info.capabilities):
            return list(self.info.roles)
        return [self.info.role or "*"]

    def has_capability(self, capability: int) -> bool:
        return any(c.type == capability for c in self.info.capabilities)

    @property
    def partition_aware(self) -> bool:
        return self.has_capability(mesos_pb2.FrameworkInfo.Capability.PARTITION_AWARE)


@dataclass(slots=True)
class Agent:
    id: str
    info: mesos_pb2.AgentInfo
    pid: str
    total: Resources
    registered_time: float
    outbox: asyncio.Queue[internal_pb2.MasterMessage | None]
    version: str = ""
    state: AgentState = AgentState.REGISTERED
    reregistered_time: float | None = None
    capabilities: list[mesos_pb2.AgentInfo.Capability.Type.ValueType] = field(
        default_factory=list)
    # task ids per framework that live on this agent
    tasks: dict[str, set[str]] = field(default_factory=dict)
    removal_timer: Timer | None = None
    unreachable_time: float | None = None
    # Ping bookkeeping of the current link: the last ping sent and the last pong seen.
    ping_seq: int = 0
    pong_seq: int = 0
    # The principal its link authenticated as (--authenticate_agents); None: it presented none.
    principal: str | None = None
    # What was sent while its link was down, sent again on its next link (agent_outbox.py).
    held: list[internal_pb2.MasterMessage] = field(default_factory=list)
    # Its entries of the state answers by kind, with what they were made from (agent_views.py).
    rendered: dict[str, tuple[object, Any]] = field(default_factory=dict, repr=False,
                                                    compare=False)

    def transition(self, state: AgentState) -> None:
        self.state = move(AGENT_TRANSITIONS, self.state, state, f"agent {self.id}")

    @property
    def connected(self) -> bool:
        """Whether its link is up: messages to it are sent, not dropped."""
        return self.state is AgentState.REGISTERED

    @property
    def active(self) -> bool:
        """Whether its resources are offered (as connected: no maintenance mode yet)."""
        return self.state is AgentState.REGISTERED
