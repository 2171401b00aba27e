"""The operator event stream (``SUBSCRIBE`` on the v1 operator API).

A subscriber first gets SUBSCRIBED with the whole state (GET_STATE) and then, in order:
TASK_ADDED when the master sends a task to its agent; TASK_UPDATED for each new status of a
task, from its agent or the master, with ``state`` the latest the agent knows (retried updates
and reconciliation answers tell nothing new and are not sent); AGENT_ADDED, AGENT_REMOVED,
FRAMEWORK_ADDED, FRAMEWORK_UPDATED, FRAMEWORK_REMOVED; HEARTBEAT every ``heartbeat_interval``.

The feed watches what the master's effects send (``LiveEffects.watchers``): a RunTask leaving for
an agent, an UPDATE or SUBSCRIBED leaving for a framework; agents and frameworks that came or
went are found by comparing the book with what subscribers were last told, on every effect (an
agent's registration asks for an allocation; a removal broadcasts a FAILURE or frees resources).
So no helper of the master knows the feed, and the book stays the one record.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from aiohttp import web

from agent_runtime.master import operator_state
from agent_runtime.master.feed_views import Viewer, viewer
from agent_runtime.master.master import Master
from agent_runtime.proto import internal_pb2, master_pb2, mesos_pb2, scheduler_pb2
from agent_runtime.streams import EventStream

log = logging.getLogger(__name__)

Event = master_pb2.Event
HEARTBEAT_INTERVAL = 15.0
MAX_SUBSCRIBERS = 1000  # Mesos's --max_operator_event_stream_subscribers default


class OperatorFeed:
    def __init__(self, master: Master, heartbeat_interval: float = HEARTBEAT_INTERVAL,
                 max_subscribers: int = MAX_SUBSCRIBERS) -> None:
        self.master = master
        self.heartbeat_interval = heartbeat_interval
        self.max_subscribers = max_subscribers
        self.subscribers: list[EventStream] = []
        # Each subscriber's view under the view ACLs (master/feed_views.py); none: it sees all.
        self._views: dict[EventStream, Viewer] = {}
        self._agents: set[str] = set()
        self._frameworks: set[str] = set()
        self._task_states: dict[str, int] = {}
        master.effects.watchers.append(self.watch)

    # What the master sends -------------------------------------------------------------------
    def watch(self, sent: object) -> None:
        if not self.subscribers:
            return
        if isinstance(sent, internal_pb2.MasterMessage) and sent.HasField("run_task"):
            self._task_added(sent.run_task.framework_info, sent.run_task.task)
        elif isinstance(sent, internal_pb2.MasterMessage) and sent.HasField("run_task_group"):
            group = sent.run_task_group  # each task of a group is added, as in Mesos
            for task in group.task_group.tasks:
                self._task_added(group.framework_info, task)
        elif isinstance(sent, scheduler_pb2.Event):
            if sent.type == scheduler_pb2.Event.UPDATE:
                self._task_updated(sent.update.status)
            elif sent.type == scheduler_pb2.Event.SUBSCRIBED:
                self._framework_changed(sent.subscribed.framework_id.value)
        self._sync()

    def _task_added(self, info: mesos_pb2.FrameworkInfo, launched: mesos_pb2.TaskInfo) -> None:
        framework = self.master.book.frameworks.get(info.id.value)
        task = framework.tasks.get(launched.task_id.value) if framework else None
        if task is None:
            return
        self._task_states[task.task_id] = task.state
        event = Event(type=Event.TASK_ADDED)
        event.task_added.task.CopyFrom(operator_state.task_proto(task))
        self._send(event)

    def _task_updated(self, status: mesos_pb2.TaskStatus) -> None:
        if status.reason == mesos_pb2.TaskStatus.REASON_RECONCILIATION:
            return
        task_id = status.task_id.value
        state = status.state
        framework_id = ""
        for framework in self.master.book.frameworks.values():
            task = framework.tasks.get(task_id)
            if task is not None:
                state, framework_id = task.reported_state(framework.partition_aware), \
                    framework.id
                break
        if self._task_states.get(task_id) == status.state:
            return  # a retried update: nothing new (``state`` is the latest the agent knows)
        self._task_states[task_id] = status.state
        if status.state in (mesos_pb2.TASK_FINISHED, mesos_pb2.TASK_FAILED, mesos_pb2.TASK_KILLED,
                     mesos_pb2.TASK_ERROR, mesos_pb2.TASK_DROPPED, mesos_pb2.TASK_GONE,
                     mesos_pb2.TASK_GONE_BY_OPERATOR):
            self._task_states.pop(task_id, None)
        event = Event(type=Event.TASK_UPDATED)
        event.task_updated.status.CopyFrom(status)
        event.task_updated.status.ClearField("data")
        event.task_updated.state = state
        if framework_id:
            event.task_updated.framework_id.value = framework_id
        self._send(event)

    def _framework_changed(self, framework_id: str) -> None:
        framework = self.master.book.frameworks.get(framework_id)
        if framework is None:
            return
        added = framework_id not in self._frameworks
        self._frameworks.add(framework_id)
        event = Event(type=Event.FRAMEWORK_ADDED if added else Event.FRAMEWORK_UPDATED)
        entry = operator_state.framework_entry(self.master, framework)
        (event.framework_added if added else event.framework_updated).framework.CopyFrom(entry)
        self._send(event)

    def _sync(self) -> None:
        book = self.master.book
        for agent_id in [a for a in book.agents if a not in self._agents]:
            self._agents.add(agent_id)
            event = Event(type=Event.AGENT_ADDED)
            event.agent_added.agent.CopyFrom(
                operator_state.agent_entry(self.master, book.agents[agent_id]))
            self._send(event)
        for agent_id in [a for a in self._agents if a not in book.agents]:
            self._agents.discard(agent_id)
            event = Event(type=Event.AGENT_REMOVED)
            event.agent_removed.agent_id.value = agent_id
            self._send(event)
        for framework_id in [f for f in book.frameworks if f not in self._frameworks]:
            self._framework_changed(framework_id)
        for framework_id in [f for f in self._frameworks if f not in book.frameworks]:
            self._frameworks.discard(framework_id)
            event = Event(type=Event.FRAMEWORK_REMOVED)
            for done in book.completed_frameworks:
                if done.id == framework_id:
                    event.framework_removed.framework_info.CopyFrom(done.info)
                    break
            else:
                event.framework_removed.framework_info.id.value = framework_id
            self._send(event)

    def _send(self, event: Event) -> None:
        for stream in list(self.subscribers):
            view = self._views.get(stream)
            shown = event if view is None else view(event)
            if shown is not None:
                stream.send(shown)

    # Subscribers -----------------------------------------------------------------------------
    async def subscribe(self, request: web.Request, media: str) -> web.StreamResponse:
        if not self.subscribers:
            # Start from the book: what the first SUBSCRIBED holds is what is known.
            self._agents = set(self.master.book.agents)
            self._frameworks = set(self.master.book.frameworks)
            self._task_states = {
                task.task_id: task.reported_state(framework.partition_aware)
                for framework in self.master.book.frameworks.values()
                for task in framework.tasks.values()}
        response = web.StreamResponse(status=200)
        response.content_type = media
        response.enable_chunked_encoding()
        await response.prepare(request)
        stream = EventStream(response, media, str(uuid.uuid4()))
        view = viewer(request, self.master.book)
        subscribed = Event(type=Event.SUBSCRIBED)
        subscribed.subscribed.get_state.CopyFrom(operator_state.get_state(self.master))
        subscribed.subscribed.heartbeat_interval_seconds = self.heartbeat_interval
        shown = subscribed if view is None else view(subscribed)
        if shown is not None:
            stream.send(shown)
        if view is not None:
            self._views[stream] = view
        stream.send(Event(type=Event.HEARTBEAT))
        self.subscribers.append(stream)
        while len(self.subscribers) > self.max_subscribers:
            self.subscribers.pop(0).close()  # as Mesos: the oldest go first
        heartbeat = asyncio.get_running_loop().create_task(self._heartbeat(stream))
        try:
            await stream.pump()
        finally:
            heartbeat.cancel()
            self._views.pop(stream, None)
            if stream in self.subscribers:
                self.subscribers.remove(stream)
        return response

    async def _heartbeat(self, stream: EventStream) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            stream.send(Event(type=Event.HEARTBEAT))

    def close(self) -> None:
        for stream in self.subscribers:
            stream.close()
        self.subscribers.clear()


__all__ = ["HEARTBEAT_INTERVAL", "OperatorFeed"]
