"""A test scheduler on our protobuf client: events gathered in the background, taken by test."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable

from agent_runtime.proto import mesos_pb2, scheduler_pb2
from agent_runtime.scheduler.client import SchedulerClient

Event = scheduler_pb2.Event


def framework_info(name: str = "test", **fields: object) -> mesos_pb2.FrameworkInfo:
    info = mesos_pb2.FrameworkInfo(user="root", name=name)
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def command_task(offer: mesos_pb2.Offer, command: str, task_id: str | None = None,
                 cpus: float = 0.1, mem: float = 32) -> mesos_pb2.TaskInfo:
    task = mesos_pb2.TaskInfo(name=task_id or "task")
    task.task_id.value = task_id or f"t-{uuid.uuid4()}"
    task.agent_id.CopyFrom(offer.agent_id)
    task.command.value = command
    for name, value in (("cpus", cpus), ("mem", mem)):
        resource = task.resources.add(name=name, type=mesos_pb2.Value.SCALAR)
        resource.scalar.value = value
    return task


def _describe(event: scheduler_pb2.Event) -> str:
    """An event as a failed wait reports it: updates with their task, state and reason."""
    name = Event.Type.Name(event.type)
    if event.type == Event.UPDATE:
        status = event.update.status
        reason = mesos_pb2.TaskStatus.Reason.Name(status.reason) if status.HasField(
            "reason") else ""
        return f"{name}({status.task_id.value} {mesos_pb2.TaskState.Name(status.state)} " \
               f"{reason} {status.message!r})"
    if event.type == Event.FAILURE:
        return f"{name}({event.failure.agent_id.value} {event.failure.executor_id.value} " \
               f"status={event.failure.status})"
    return name


class TestFramework:
    __test__ = False  # not a pytest class

    def __init__(self, client: SchedulerClient, acknowledge_all: bool = False) -> None:
        self.client = client
        self.acknowledge_all = acknowledge_all  # every update, as it comes: a test that
        # does not look at acknowledgements need not make them
        self.events: list[scheduler_pb2.Event] = []
        self._taken: set[int] = set()
        self._changed = asyncio.Condition()
        self._reader: asyncio.Task[None] | None = None
        self.error: Exception | None = None

    async def start(self) -> str:
        self._reader = asyncio.get_running_loop().create_task(self._read())
        await self.take(lambda e: e.type == Event.SUBSCRIBED)
        assert self.client.framework_id is not None
        return self.client.framework_id

    async def _read(self) -> None:
        try:
            async for event in self.client.events():
                if self.acknowledge_all and event.type == Event.UPDATE and \
                        event.update.status.uuid:
                    await self.client.acknowledge(event.update.status)
                async with self._changed:
                    self.events.append(event)
                    self._changed.notify_all()
        except Exception as exc:  # handed to the test by take()
            self.error = exc
        async with self._changed:
            self.events.append(Event(type=Event.UNKNOWN))  # marks the end of the stream
            self._changed.notify_all()

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader

    # The default timeouts bound a hang, generous for a loaded machine; a test that checks
    # that something does not come passes a short one of its own.
    async def take(self, predicate: Callable[[scheduler_pb2.Event], bool],
                   timeout: float = 60.0) -> scheduler_pb2.Event:
        deadline = time.monotonic() + timeout
        async with self._changed:
            while True:
                for index, event in enumerate(self.events):
                    if index not in self._taken and predicate(event):
                        self._taken.add(index)
                        return event
                if self.error is not None:
                    raise self.error
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [_describe(e) for e in self.events]
                    raise TimeoutError(f"no matching event within {timeout}s; seen {seen}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), left)

    async def offers(self, timeout: float = 60.0) -> list[mesos_pb2.Offer]:
        event = await self.take(lambda e: e.type == Event.OFFERS, timeout)
        return list(event.offers.offers)

    async def update(self, task_id: str, state: int | None = None, timeout: float = 60.0,
                     ack: bool = True) -> mesos_pb2.TaskStatus:
        event = await self.take(
            lambda e: e.type == Event.UPDATE and e.update.status.task_id.value == task_id
            and (state is None or e.update.status.state == state), timeout)
        if ack and not self.acknowledge_all:
            await self.client.acknowledge(event.update.status)
        return event.update.status

    async def launch(self, offer: mesos_pb2.Offer, command: str,
                     task_id: str | None = None) -> str:
        task = command_task(offer, command, task_id)
        await self.client.accept([offer.id.value], [task], refuse_seconds=0)
        return str(task.task_id.value)

    async def running(self, offer: mesos_pb2.Offer, command: str = "sleep 300",
                      task_id: str | None = None) -> str:
        """Launch and wait for TASK_RUNNING, acknowledging TASK_STARTING on the way."""
        task_id = await self.launch(offer, command, task_id)
        await self.update(task_id, mesos_pb2.TASK_STARTING)
        await self.update(task_id, mesos_pb2.TASK_RUNNING)
        return task_id


@contextlib.asynccontextmanager
async def subscribed(master: str, info: mesos_pb2.FrameworkInfo
                     ) -> AsyncIterator[TestFramework]:
    """A framework subscribed to ``master`` and listening, stopped on the way out."""
    async with SchedulerClient(master, info) as client:
        framework = TestFramework(client)
        await framework.start()
        try:
            yield framework
        finally:
            await framework.stop()


TERMINAL = frozenset({mesos_pb2.TASK_FINISHED, mesos_pb2.TASK_FAILED, mesos_pb2.TASK_KILLED,
                      mesos_pb2.TASK_ERROR, mesos_pb2.TASK_LOST, mesos_pb2.TASK_DROPPED,
                      mesos_pb2.TASK_GONE})


async def terminal(framework: TestFramework, task_id: str, timeout: float = 60.0
                   ) -> mesos_pb2.TaskStatus:
    """The task's first terminal update, acknowledging the others (and their repeats) on the
    way: an unacknowledged update holds back the next one."""
    deadline = time.monotonic() + timeout
    while True:
        status = await framework.update(task_id, timeout=max(0.1, deadline - time.monotonic()))
        if status.state in TERMINAL:
            return status


async def launch_one(client: SchedulerClient, command: str, cpus: float, mem: float
                     ) -> tuple[TestFramework, str]:
    """Subscribe ``client`` and launch ``command`` on its first offer; no waiting."""
    framework = TestFramework(client)
    await framework.start()
    offers = await framework.offers()
    task = command_task(offers[0], command, cpus=cpus, mem=mem)
    await client.accept([offers[0].id.value], [task], refuse_seconds=0)
    return framework, task.task_id.value
