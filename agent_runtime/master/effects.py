"""What the master does to the world outside its book, behind one narrow Protocol.

The helpers (tasks, agent tasks, executors, reconciliation, quota, reservations, offers, the
framework and agent lifecycles) take a :class:`~agent_runtime.master.book.MasterBook` and a
:class:`MasterEffects` and never the Master: sending to an agent or a framework, broadcasting,
writing the registry, asking for an allocation, counting metrics, reading the clock and starting
timers all go through here, so a unit test replaces them with one fake object.

Also the two events the master writes itself in several places: the FAILURE of an agent and
a status update it sources (``master_status``: source SOURCE_MASTER, no uuid, nothing for the
framework to acknowledge).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from typing import Protocol

from agent_runtime.master import agent_outbox
from agent_runtime.master.book import MasterBook
from agent_runtime.master.lifecycle import AgentState
from agent_runtime.master.model import Agent, Framework, Timer
from agent_runtime.master.registrar import GroupCommit
from agent_runtime.master.registry import Registry
from agent_runtime.proto import internal_pb2, mesos_pb2, scheduler_pb2
from agent_runtime.task_states import Reason, TaskState

log = logging.getLogger(__name__)
Status = mesos_pb2.TaskStatus


class MasterEffects(Protocol):
    def now(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer: ...

    def to_agent(self, agent: Agent, message: internal_pb2.MasterMessage) -> None:
        """Send to the agent if its link is up; held for its next link otherwise."""

    def to_framework(self, framework: Framework, event: scheduler_pb2.Event) -> None:
        """Send to the framework if it is subscribed; dropped otherwise (it reconciles)."""

    def broadcast(self, event: scheduler_pb2.Event) -> None:
        """Send to every framework."""

    def save_registry(self) -> None:
        """Persist the book's registry state; raises when it cannot (the caller refuses)."""

    def save_registry_later(self, what: str) -> None:
        """Persist soon, in one write with others asked for meanwhile; a failure is logged
        (for changes the master cannot refuse, e.g. agents its timers mark unreachable)."""

    def allocate_soon(self) -> None:
        """Run the allocator soon, once, however many changes asked for it."""

    def count(self, metric: str, by: int = 1) -> None: ...

    def gauge(self, metric: str, value: int) -> None: ...


def agent_failure(agent_id: str) -> scheduler_pb2.Event:
    """FAILURE of an agent: it is unreachable or gone (Mesos's ``slaveLost``)."""
    event = scheduler_pb2.Event(type=scheduler_pb2.Event.FAILURE)
    event.failure.agent_id.value = agent_id
    return event


def master_status(task_id: str, agent_id: str, state: TaskState, reason: Reason, *, now: float,
                  message: str | None = None, last: mesos_pb2.TaskStatus | None = None,
                  unreachable_time: float | None = None) -> scheduler_pb2.Event:
    """An UPDATE the master sources: a task state it decided, or a reconciliation answer built
    on the ``last`` status it knows (its uuid dropped: nothing to acknowledge)."""
    event = scheduler_pb2.Event(type=scheduler_pb2.Event.UPDATE)
    status = event.update.status
    if last is not None:
        status.CopyFrom(last)
        status.ClearField("uuid")
    status.task_id.value = task_id
    if agent_id:
        status.agent_id.value = agent_id
    if unreachable_time is not None:
        status.unreachable_time.nanoseconds = int(unreachable_time * 1e9)
    status.state = state
    status.source = Status.SOURCE_MASTER
    status.reason = reason
    if message is not None:
        status.message = message
    status.timestamp = now
    return event


class LiveEffects:
    """The effects of a running master: asyncio timers, agent outboxes, scheduler streams, the
    registry, and a metrics counter the ``/metrics/snapshot`` endpoint reads."""

    def __init__(self, book: MasterBook, registry: Registry, allocate: Callable[[], None],
                 clock: Callable[[], float] = time.time) -> None:
        self._book = book
        self._registry = registry
        # Agent registrations' registry writes, batched (the agent link defers and commits).
        self.registrar = GroupCommit(self._write_registry)
        self._later: set[asyncio.Task[None]] = set()
        self._allocate = allocate
        self._clock = clock
        self._allocation_scheduled = False
        self.metrics: collections.Counter[str] = collections.Counter()
        # See every message and event the master sends (the operator event stream and the
        # Prometheus launch latencies derive theirs from them), and every gauge set.
        self.watchers: list[Callable[[object], None]] = []
        self.gauge_watchers: list[Callable[[str, int], None]] = []

    def now(self) -> float:
        return self._clock()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(delay, callback)

    def to_agent(self, agent: Agent, message: internal_pb2.MasterMessage) -> None:
        if agent.connected:
            agent.outbox.put_nowait(message)
        elif agent.state is not AgentState.REMOVED:
            agent_outbox.hold(agent, message)  # for its next link: never dropped silently
        self._watch(message)

    def to_framework(self, framework: Framework, event: scheduler_pb2.Event) -> None:
        if framework.stream is not None:
            framework.stream.send(event)
        self._watch(event)

    def broadcast(self, event: scheduler_pb2.Event) -> None:
        for framework in self._book.frameworks.values():
            self.to_framework(framework, event)
        self._watch(None)

    def save_registry(self) -> None:
        if self.registrar.deferring:
            self.registrar.request()
            return
        self._write_registry()

    def save_registry_later(self, what: str) -> None:
        # A thousand agents lost at once (a rack) is one write, not a thousand rewrites.
        write = asyncio.get_running_loop().create_task(self.registrar.commit())
        self._later.add(write)

        def done(task: asyncio.Task[None]) -> None:
            self._later.discard(task)
            if not task.cancelled() and task.exception() is not None:
                log.error("cannot %s in the registry: %s", what, task.exception())

        write.add_done_callback(done)

    def _write_registry(self) -> None:
        self._registry.state = self._book.registry
        self._registry.save()

    def allocate_soon(self) -> None:
        self._watch(None)  # something changed: agents or frameworks may have come or gone
        if not self._allocation_scheduled:
            self._allocation_scheduled = True
            asyncio.get_running_loop().call_soon(self._run_allocation)

    def _run_allocation(self) -> None:
        self._allocation_scheduled = False
        self._allocate()

    def _watch(self, sent: object) -> None:
        for watcher in self.watchers:
            watcher(sent)

    def count(self, metric: str, by: int = 1) -> None:
        self.metrics[metric] += by

    def gauge(self, metric: str, value: int) -> None:
        self.metrics[metric] = value
        for watcher in self.gauge_watchers:
            watcher(metric, value)


__all__ = ["LiveEffects", "MasterEffects", "agent_failure", "master_status"]
