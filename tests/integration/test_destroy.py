"""Destroying a container with no cgroups and no pid namespace (the default posix isolation):
the task, in a session of its own, goes with its executor. The executor is stopped (SIGSTOP),
so only the agent's destroy can end things: after the shutdown grace period it kills the
executor and everything under it."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

from agent_runtime.proto import mesos_pb2
from agent_runtime.scheduler.client import SchedulerClient
from tests.harness.cluster import Cluster, running_cluster
from tests.harness.framework import TestFramework, command_task, framework_info
from tests.harness.wait import until


@pytest.fixture
def cluster(tmp_path: Any) -> Iterator[Cluster]:
    with running_cluster(str(tmp_path), agent_flags=[
            "--executor_shutdown_grace_period=1secs"]) as running:
        yield running


def _sleepers(seconds: str) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", seconds]]


async def test_a_destroyed_container_takes_its_task_along(cluster: Cluster) -> None:
    seconds = str(40000 + int(uuid.uuid4().int % 10000))  # names the task's process
    async with SchedulerClient(cluster.master, framework_info()) as client:
        framework = TestFramework(client)
        await framework.start()
        offer = (await framework.offers())[0]
        task = command_task(offer, f"sleep {seconds}")
        await client.accept([offer.id.value], [task], refuse_seconds=0)
        await framework.update(task.task_id.value, mesos_pb2.TASK_STARTING)
        await framework.update(task.task_id.value, mesos_pb2.TASK_RUNNING)
        [sleeper] = _sleepers(seconds)
        shell = sleeper.parent()  # the task's /bin/sh -c
        assert shell is not None
        executor = shell.parent()
        assert executor is not None and os.getsid(shell.pid) != os.getsid(executor.pid)
        os.kill(executor.pid, signal.SIGSTOP)  # it can no longer kill its task itself
        await client.teardown()
        await until(lambda: not _sleepers(seconds),
                    what="the task to go with its destroyed container")

        def executor_gone() -> bool:
            try:
                return executor.status() == psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                return True

        # The destroy kills the task's session and the executor's, in no promised order.
        await until(executor_gone, what="the stopped executor to be killed")
