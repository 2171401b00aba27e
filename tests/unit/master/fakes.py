"""The master's helpers without a Master, a network or an event loop: a book, a recording fake
of :class:`~agent_runtime.master.effects.MasterEffects`, the real (pure) allocator, and the
helpers wired as the Master wires them. Timers are recorded and fired by hand."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from dataclasses import dataclass, field

from agent_runtime.master.agent_tasks import AgentTasks
from agent_runtime.master.agents import AgentLifecycle
from agent_runtime.master.allocator import Allocator
from agent_runtime.master.book import MasterBook
from agent_runtime.master.config import MasterConfig
from agent_runtime.master.executors import CustomExecutors
from agent_runtime.master.lifecycle import FrameworkState
from agent_runtime.master.model import Agent, Framework
from agent_runtime.master.offers import Offers
from agent_runtime.master.quota import QuotaBook
from agent_runtime.master.reconciliation import Reconciler
from agent_runtime.master.reservations import Reservations
from agent_runtime.master.task_ends import TaskEnds
from agent_runtime.master.tasks import TaskLauncher
from agent_runtime.proto import internal_pb2, mesos_pb2, scheduler_pb2
from agent_runtime.resources import Resources, parse
from agent_runtime.task_states import TaskState

Capability = mesos_pb2.FrameworkInfo.Capability


@dataclass
class FakeTimer:
    delay: float
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class FakeEffects:
    """Records what the helpers do to the world; ``now`` is whatever the test sets."""

    clock: float = 1000.0
    to_agents: list[tuple[str, internal_pb2.MasterMessage]] = field(default_factory=list)
    events: list[tuple[str, scheduler_pb2.Event]] = field(default_factory=list)
    broadcasts: list[scheduler_pb2.Event] = field(default_factory=list)
    timers: list[FakeTimer] = field(default_factory=list)
    saves: int = 0
    allocations_asked: int = 0
    metrics: collections.Counter[str] = field(default_factory=collections.Counter)

    def now(self) -> float:
        return self.clock

    def call_later(self, delay: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(delay, callback)
        self.timers.append(timer)
        return timer

    def fire_timers(self) -> None:
        """Run every timer started and not cancelled (as if their delays had passed)."""
        due, self.timers = [t for t in self.timers if not t.cancelled], []
        for timer in due:
            timer.callback()

    def to_agent(self, agent: Agent, message: internal_pb2.MasterMessage) -> None:
        self.to_agents.append((agent.id, message))

    def to_framework(self, framework: Framework, event: scheduler_pb2.Event) -> None:
        self.events.append((framework.id, event))

    def broadcast(self, event: scheduler_pb2.Event) -> None:
        self.broadcasts.append(event)

    def save_registry(self) -> None:
        self.saves += 1

    def save_registry_later(self, what: str) -> None:
        self.saves += 1

    def allocate_soon(self) -> None:
        self.allocations_asked += 1

    def count(self, metric: str, by: int = 1) -> None:
        self.metrics[metric] += by

    def gauge(self, metric: str, value: int) -> None:
        self.metrics[metric] = value

    # What tests ask of the record ------------------------------------------------------------
    def updates(self, framework_id: str | None = None) -> list[mesos_pb2.TaskStatus]:
        return [e.update.status for fid, e in self.events
                if e.type == scheduler_pb2.Event.UPDATE and framework_id in (None, fid)]

    def of_kind(self, kind: int) -> list[scheduler_pb2.Event]:
        return [e for _, e in self.events if e.type == kind]


@dataclass
class Parts:
    """The master's helpers as :class:`agent_runtime.master.master.Master` wires them."""

    book: MasterBook
    effects: FakeEffects
    allocator: Allocator
    offers: Offers
    reservations: Reservations
    quota: QuotaBook
    executors: CustomExecutors
    ends: TaskEnds
    reconciler: Reconciler
    launcher: TaskLauncher
    agent_tasks: AgentTasks
    agents: AgentLifecycle


def parts(config: MasterConfig | None = None) -> Parts:
    config = config or MasterConfig()
    book = MasterBook(roles=config.role_whitelist())
    effects = FakeEffects()
    allocator = Allocator(weights=config.weight_map(), allocation_interval=1.0)
    offers = Offers(book, effects, allocator, master_id="M", offer_timeout=config.offer_timeout)
    reservations = Reservations(book, effects, allocator, offers)
    executors = CustomExecutors(book, effects, allocator)
    ends = TaskEnds(book, effects, allocator)
    reconciler = Reconciler(book, effects)
    launcher = TaskLauncher(book, effects, allocator, offers=offers, reservations=reservations,
                            executors=executors, reconciler=reconciler, ends=ends)
    agent_tasks = AgentTasks(book, effects, allocator, executors=executors, ends=ends)
    agents = AgentLifecycle(book, effects, allocator, offers=offers, reservations=reservations,
                            agent_tasks=agent_tasks, master_id="M", link_grace=75.0,
                            reregister_timeout=600.0)
    return Parts(book, effects, allocator, offers, reservations,
                 QuotaBook(book, effects, allocator, flag_weights=config.weight_map()),
                 executors, ends, reconciler, launcher, agent_tasks, agents)


def add_framework(p: Parts, framework_id: str = "F1", *, role: str = "*",
                  partition_aware: bool = True) -> Framework:
    info = mesos_pb2.FrameworkInfo(user="root", name=framework_id, role=role)
    info.id.value = framework_id
    if partition_aware:
        info.capabilities.add(type=Capability.PARTITION_AWARE)
    framework = Framework(framework_id, info, registered_time=0.0, state=FrameworkState.ACTIVE)
    p.book.frameworks[framework_id] = framework
    p.allocator.add_framework(framework_id, framework.roles)
    return framework


def add_agent(p: Parts, agent_id: str = "S1", resources: str = "cpus:4;mem:1024") -> Agent:
    info = mesos_pb2.AgentInfo(hostname="h", port=5051)
    info.id.value = agent_id
    total = parse(resources)
    outbox: asyncio.Queue[internal_pb2.MasterMessage | None] = asyncio.Queue()
    agent = Agent(agent_id, info, "slave(1)@127.0.0.1:5051", total, registered_time=0.0,
                  outbox=outbox)
    p.book.agents[agent_id] = agent
    p.allocator.add_agent(agent_id, total)
    return agent


def offer_all(p: Parts) -> list[str]:
    """Run the allocator once; the ids of the offers it made."""
    before = set(p.book.offers)
    p.offers.allocate()
    return sorted(set(p.book.offers) - before)


def launch(p: Parts, framework: Framework, offer_ids: list[str], *tasks: tuple[str, str],
           agent_id: str = "S1") -> None:
    """ACCEPT the offers with command tasks given as (task id, resources)."""
    accept = scheduler_pb2.Call.Accept()
    for offer_id in offer_ids:
        accept.offer_ids.add(value=offer_id)
    operation = accept.operations.add(type=mesos_pb2.Offer.Operation.LAUNCH)
    for task_id, resources in tasks:
        task = operation.launch.task_infos.add(name=task_id)
        task.task_id.value = task_id
        task.agent_id.value = agent_id
        task.command.value = "true"
        task.resources.extend(parse(resources).to_proto())
    p.launcher.accept(framework, accept)


def status_update(p: Parts, framework: Framework, task_id: str, state: TaskState, *,
                  uuid: bytes = b"", agent_id: str = "S1") -> None:
    update = internal_pb2.StatusUpdate()
    update.framework_id.value = framework.id
    update.status.task_id.value = task_id
    update.status.agent_id.value = agent_id
    update.status.state = state
    if uuid:
        update.status.uuid = uuid
    p.launcher.status_update(p.book.agents[agent_id], update)


def resources(text: str) -> Resources:
    return parse(text)
