"""A scheduler for tests of third-party executors, and tasks the echo executor
(``tests/harness/echo_executor.py``) runs: ``data`` says what it does with each."""

from __future__ import annotations

import contextlib
import json
import shlex
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from agent_runtime.proto import mesos_pb2, scheduler_pb2
from agent_runtime.scheduler.client import SchedulerClient
from tests.harness import echo_executor
from tests.harness.cluster import Cluster
from tests.harness.framework import TestFramework

Event = scheduler_pb2.Event
EXECUTOR_ID = "echo-executor"


class Scheduler(TestFramework):
    """A test framework that acknowledges every update, with what the echo executor's tests
    ask of it."""

    def __init__(self, client: SchedulerClient) -> None:
        super().__init__(client, acknowledge_all=True)

    async def offer(self) -> mesos_pb2.Offer:
        event = await self.take(lambda e: e.type == Event.OFFERS)
        return event.offers.offers[0]

    async def offer_of(self, cpus: float) -> mesos_pb2.Offer:
        """Decline every offer held (together, without a filter) until one holds ``cpus``."""
        deadline = time.monotonic() + 60.0
        seen: list[float] = []
        while True:
            first = await self.take(lambda e: e.type == Event.OFFERS,
                                    max(deadline - time.monotonic(), 0.0))
            held = list(first.offers.offers)
            async with self._changed:
                for index, event in enumerate(self.events):
                    if event.type == Event.OFFERS and index not in self._taken:
                        self._taken.add(index)
                        held.extend(event.offers.offers)
            for offer in held:
                seen.append(sum(r.scalar.value for r in offer.resources if r.name == "cpus"))
                if abs(seen[-1] - cpus) < 1e-6:
                    return offer
            if time.monotonic() > deadline:
                raise TimeoutError(f"no offer of {cpus} cpus; offered {seen[:20]}")
            await self.client.decline([o.id.value for o in held], refuse_seconds=0)

    async def message(self, data: bytes) -> scheduler_pb2.Event.Message:
        event = await self.take(lambda e: e.type == Event.MESSAGE and e.message.data == data)
        return event.message

    async def failure(self, executor_id: str) -> scheduler_pb2.Event.Failure:
        event = await self.take(lambda e: e.type == Event.FAILURE
                                and e.failure.executor_id.value == executor_id)
        return event.failure

    async def launch_modes(self, offer: mesos_pb2.Offer, task_id: str, *modes: str) -> None:
        """One task per mode, all in one ACCEPT, ids ``task_id``, ``task_id-1``, ..."""
        tasks = [custom_task(offer, f"{task_id}-{index}" if index else task_id, mode)
                 for index, mode in enumerate(modes)]
        await self.client.accept([offer.id.value], tasks, refuse_seconds=0)


@contextlib.asynccontextmanager
async def scheduler(cluster: Cluster, checkpoint: bool = False) -> AsyncIterator[Scheduler]:
    info = mesos_pb2.FrameworkInfo(user="root", name="custom-executor-test",
                                   checkpoint=checkpoint)
    async with SchedulerClient(cluster.master, info) as client:
        running = Scheduler(client)
        await running.start()
        try:
            yield running
        finally:
            await running.stop()


def _scalars(message: mesos_pb2.TaskInfo | mesos_pb2.ExecutorInfo) -> None:
    for name, value in (("cpus", 0.1), ("mem", 32.0)):
        resource = message.resources.add(name=name, type=mesos_pb2.Value.SCALAR)
        resource.scalar.value = value


def custom_task(offer: mesos_pb2.Offer, task_id: str, mode: str,
                executor_id: str = EXECUTOR_ID) -> mesos_pb2.TaskInfo:
    """A task run by the echo executor; ``mode`` (its ``data``) says what the executor does."""
    task = mesos_pb2.TaskInfo(name=task_id, data=mode.encode())
    task.task_id.value = task_id
    task.agent_id.CopyFrom(offer.agent_id)
    _scalars(task)
    executor = task.executor
    executor.type = mesos_pb2.ExecutorInfo.CUSTOM
    executor.executor_id.value = executor_id
    executor.name = "echo executor"
    executor.command.value = shlex.join([sys.executable, echo_executor.__file__])
    _scalars(executor)
    return task


def report_of(status: mesos_pb2.TaskStatus) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(status.data)
    return report
