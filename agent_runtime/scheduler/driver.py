"""An asyncio scheduler driver on the v1 HTTP API: what a framework writer should not rewrite.

:class:`Driver` keeps a framework subscribed and hands its :class:`Handler` decoded events:

- subscribe, and on any loss of the stream (the master went away, a network error, no event
  for several heartbeat intervals) subscribe again with the framework id it was given, which is
  a scheduler failover as Mesos sees it (the framework's tasks live on meanwhile, as long as
  ``failover_timeout`` allows);
- between attempts, back off exponentially with full jitter (``Backoff``), reset once
  subscribed, so a restarting master is not hammered by every framework at once;
- acknowledge every status update that carries a uuid once the handler has seen it (the agent
  retries an unacknowledged update forever, so forgetting one is a leak);
- reconcile on every subscription: explicitly for the tasks the handler says it knows, then
  implicitly (the master answers with every task it knows of the framework).

Events are dispatched by a table of event type to handler method; a handler method that raises
is logged and the stream goes on (one bad event must not lose the subscription).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from agent_runtime.http_util import PROTOBUF
from agent_runtime.proto import mesos_pb2, scheduler_pb2
from agent_runtime.scheduler.client import SchedulerClient, SchedulerError
from agent_runtime.tls import PLAIN, TlsConfig

log = logging.getLogger(__name__)
Event = scheduler_pb2.Event
Call = scheduler_pb2.Call


class Handler:
    """What a framework does with events; every method is a no-op until overridden."""

    async def subscribed(self, driver: Driver, framework_id: str) -> None: ...

    async def offers(self, driver: Driver, offers: list[mesos_pb2.Offer]) -> None: ...

    async def rescind(self, driver: Driver, offer_id: str) -> None: ...

    async def update(self, driver: Driver, status: mesos_pb2.TaskStatus) -> None: ...

    async def failure(self, driver: Driver, agent_id: str, executor_id: str) -> None: ...

    async def error(self, driver: Driver, message: str) -> None: ...

    def known_tasks(self) -> list[tuple[str, str]]:
        """(task id, agent id) of the tasks to reconcile explicitly on each subscription."""
        return []


@dataclass
class Backoff:
    """Exponential backoff with full jitter: the n-th wait is uniform in [0, min(cap, base*2^n)]."""

    base: float = 0.25
    cap: float = 15.0
    attempt: int = 0
    rng: random.Random | None = None

    def next(self) -> float:
        ceiling = min(self.cap, self.base * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        return (self.rng or random).uniform(0, ceiling)

    def reset(self) -> None:
        self.attempt = 0


class Driver:
    def __init__(self, master: str, info: mesos_pb2.FrameworkInfo, handler: Handler, *,
                 backoff: Backoff | None = None, content_type: str = PROTOBUF,
                 missed_heartbeats: int = 5, tls: TlsConfig = PLAIN) -> None:
        self.master = master
        self.tls = tls
        self.info = info
        self.handler = handler
        self.backoff = backoff or Backoff()
        self.content_type = content_type
        self.missed_heartbeats = missed_heartbeats
        self.client: SchedulerClient | None = None
        self.subscriptions = 0
        self._stopping = False
        self._heartbeat = 15.0
        self._dispatch: dict[int, Callable[[Event], Awaitable[None]]] = {
            Event.SUBSCRIBED: self._on_subscribed,
            Event.OFFERS: lambda e: self.handler.offers(self, list(e.offers.offers)),
            Event.RESCIND: lambda e: self.handler.rescind(self, e.rescind.offer_id.value),
            Event.UPDATE: self._on_update,
            Event.FAILURE: lambda e: self.handler.failure(
                self, e.failure.agent_id.value, e.failure.executor_id.value),
            Event.ERROR: self._on_error,
        }

    @property
    def framework_id(self) -> str | None:
        return self.info.id.value or None

    async def run(self) -> None:
        """Stay subscribed until :meth:`stop` (or the master removes the framework)."""
        while not self._stopping:
            try:
                await self._subscription()
            except (aiohttp.ClientError, OSError, TimeoutError, SchedulerError) as exc:
                log.warning("scheduler stream lost: %s", exc)
            if self._stopping:
                break
            await asyncio.sleep(self.backoff.next())

    def stop(self) -> None:
        self._stopping = True

    async def _subscription(self) -> None:
        async with SchedulerClient(self.master, self.info, self.content_type,
                                   tls=self.tls) as client:
            self.client = client
            try:
                events = client.events().__aiter__()
                while not self._stopping:
                    # No event (not even a HEARTBEAT) for several intervals: the stream is
                    # dead even if the socket is not; subscribe again.
                    timeout = self._heartbeat * self.missed_heartbeats
                    event = await asyncio.wait_for(events.__anext__(), timeout)
                    handle = self._dispatch.get(event.type)
                    if handle is None:
                        continue
                    try:
                        await handle(event)
                    except (SchedulerError, aiohttp.ClientError):
                        raise
                    except Exception:  # a handler's bug must not end the subscription
                        log.exception("handler failed on %s", Event.Type.Name(event.type))
            except StopAsyncIteration:
                log.warning("scheduler stream ended")
            finally:
                self.client = None

    async def _on_subscribed(self, event: Event) -> None:
        self.subscriptions += 1
        self.backoff.reset()
        if event.subscribed.heartbeat_interval_seconds > 0:
            self._heartbeat = event.subscribed.heartbeat_interval_seconds
        framework_id = event.subscribed.framework_id.value
        await self.handler.subscribed(self, framework_id)
        known = self.handler.known_tasks()
        if known:
            await self.reconcile(known)
        await self.reconcile([])

    async def _on_update(self, event: Event) -> None:
        status = event.update.status
        await self.handler.update(self, status)
        if status.uuid and self.client is not None:
            await self.client.acknowledge(status)

    async def _on_error(self, event: Event) -> None:
        await self.handler.error(self, event.error.message)
        if "removed" in event.error.message:
            self.stop()  # the master will not take this framework id back

    # Calls -------------------------------------------------------------------------------
    def _client(self) -> SchedulerClient:
        if self.client is None or self.client.framework_id is None:
            raise SchedulerError("not subscribed")
        return self.client

    async def reconcile(self, tasks: list[tuple[str, str]]) -> None:
        """Explicit reconciliation of ``tasks``; an empty list asks for all (implicit)."""
        call = Call(type=Call.RECONCILE)
        for task_id, agent_id in tasks:
            item = call.reconcile.tasks.add()
            item.task_id.value = task_id
            if agent_id:
                item.agent_id.value = agent_id
        await self._client().call(call)

    async def accept(self, offer_ids: list[str], operations: list[mesos_pb2.Offer.Operation],
                     refuse_seconds: float | None = None) -> None:
        call = Call(type=Call.ACCEPT)
        for offer_id in offer_ids:
            call.accept.offer_ids.add(value=offer_id)
        call.accept.operations.extend(operations)
        if refuse_seconds is not None:
            call.accept.filters.refuse_seconds = refuse_seconds
        await self._client().call(call)

    async def launch(self, offer_ids: list[str], tasks: list[mesos_pb2.TaskInfo]) -> None:
        await self._client().accept(offer_ids, tasks)

    async def decline(self, offer_ids: list[str], refuse_seconds: float | None = None) -> None:
        if offer_ids:
            await self._client().decline(offer_ids, refuse_seconds)

    async def kill(self, task_id: str, agent_id: str | None = None) -> None:
        await self._client().kill(task_id, agent_id)

    async def revive(self) -> None:
        await self._client().call(Call(type=Call.REVIVE))

    async def teardown(self) -> None:
        self.stop()
        await self._client().teardown()


__all__ = ["Backoff", "Driver", "Handler"]
