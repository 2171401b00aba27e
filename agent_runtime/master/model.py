"""The master's in-memory records: frameworks, agents, offers and tasks."""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from agent_runtime.proto import internal_pb2, mesos_pb2, scheduler_pb2
from agent_runtime.resources import Resources
from agent_runtime.streams import EventStream
from agent_runtime.task_states import TERMINAL_STATES

log = logging.getLogger(__name__)
__all__ = ["TERMINAL_STATES", "Agent", "Executor", "Framework", "Offer", "Task"]

MAX_COMPLETED_TASKS = 1000


@dataclass(slots=True)
class Task:
    info: mesos_pb2.TaskInfo
    framework_id: str
    agent_id: str
    role: str
    resources: Resources
    state: int = mesos_pb2.TASK_STAGING
    statuses: list[mesos_pb2.TaskStatus] = field(default_factory=list)
    # uuid of the update whose acknowledgement ends the task's life in the master
    terminal_uuid: bytes | None = None
    user: str = ""
    # Set while its agent is unreachable: the task may still run; frameworks are told
    # TASK_UNREACHABLE (PARTITION_AWARE) or TASK_LOST, and `state` keeps what was last known.
    unreachable_time: float | None = None

    def reported_state(self, partition_aware: bool) -> int:
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
    timer: asyncio.TimerHandle | None = None


@dataclass(slots=True)
class Framework:
    id: str
    info: mesos_pb2.FrameworkInfo
    registered_time: float
    stream: EventStream | None = None
    connected: bool = False
    active: bool = False
    recovered: bool = False
    unregistered_time: float = 0.0
    reregistered_time: float | None = None
    tasks: dict[str, Task] = field(default_factory=dict)
    completed_tasks: collections.deque[Task] = field(
        default_factory=lambda: collections.deque(maxlen=MAX_COMPLETED_TASKS)
    )
    offers: dict[str, Offer] = field(default_factory=dict)
    failover_timer: asyncio.TimerHandle | None = None
    heartbeat: asyncio.Task[None] | None = None
    suppressed_roles: set[str] = field(default_factory=set)

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

    def send(self, event: scheduler_pb2.Event) -> None:
        if self.stream is not None:
            self.stream.send(event)


@dataclass(slots=True)
class Agent:
    id: str
    info: mesos_pb2.AgentInfo
    pid: str
    total: Resources
    registered_time: float
    outbox: asyncio.Queue[internal_pb2.MasterMessage | None]
    version: str = ""
    connected: bool = True
    active: bool = True
    reregistered_time: float | None = None
    capabilities: list[int] = field(default_factory=list)
    # task ids per framework that live on this agent
    tasks: dict[str, set[str]] = field(default_factory=dict)
    removal_timer: asyncio.TimerHandle | None = None
    unreachable_time: float | None = None
    # Ping bookkeeping of the current link: the last ping sent and the last pong seen.
    ping_seq: int = 0
    pong_seq: int = 0

    def send(self, message: internal_pb2.MasterMessage) -> None:
        if self.connected:
            self.outbox.put_nowait(message)


def tasks_on(agent: Agent, frameworks: Mapping[str, Framework]) -> list[tuple[Framework, Task]]:
    """The tasks the master has placed on ``agent``, with their frameworks, taken all at once:
    callers end some of them as they go, which changes ``agent.tasks``."""
    found = []
    for framework_id, task_ids in list(agent.tasks.items()):
        framework = frameworks.get(framework_id)
        if framework is None:
            continue
        for task_id in sorted(task_ids):
            task = framework.tasks.get(task_id)
            if task is not None:
                found.append((framework, task))
    return found
