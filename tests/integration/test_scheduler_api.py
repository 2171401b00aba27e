"""The v1 scheduler API over protobuf: reconcile, suppress/revive, filters, failover, retries."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from agent_runtime.proto import mesos_pb2, scheduler_pb2
from agent_runtime.scheduler.client import SchedulerClient
from tests.harness.cluster import Cluster, get_json, running_cluster
from tests.harness.framework import TestFramework, framework_info
from tests.harness.wait import until

Call = scheduler_pb2.Call
Status = mesos_pb2.TaskStatus


async def test_reconcile_implicit_and_explicit(cluster: Cluster) -> None:
    async with SchedulerClient(cluster.master, framework_info()) as client:
        framework = TestFramework(client)
        await framework.start()
        (offer,) = await framework.offers()
        task_id = await framework.running(offer)

        await client.call(Call(type=Call.RECONCILE))
        status = await framework.update(task_id, ack=False)
        assert status.state == mesos_pb2.TASK_RUNNING
        assert status.reason == Status.REASON_RECONCILIATION
        assert status.source == Status.SOURCE_MASTER
        assert not status.uuid  # reconciliation updates need no acknowledgement

        call = Call(type=Call.RECONCILE)
        call.reconcile.tasks.add().task_id.value = "never-launched"
        await client.call(call)
        unknown = await framework.update("never-launched", ack=False)
        # Not PARTITION_AWARE: an unknown task is TASK_LOST, as Mesos answers such frameworks.
        assert unknown.state == mesos_pb2.TASK_LOST
        assert unknown.reason == Status.REASON_RECONCILIATION
        await framework.stop()


async def test_partition_aware_unknown_task_is_task_unknown(cluster: Cluster) -> None:
    info = framework_info()
    info.capabilities.add(type=mesos_pb2.FrameworkInfo.Capability.PARTITION_AWARE)
    async with SchedulerClient(cluster.master, info) as client:
        framework = TestFramework(client)
        await framework.start()
        call = Call(type=Call.RECONCILE)
        call.reconcile.tasks.add().task_id.value = "never-launched"
        await client.call(call)
        status = await framework.update("never-launched", ack=False)
        assert status.state == mesos_pb2.TASK_UNKNOWN
        await framework.stop()


async def test_shutdown_executor_kills_its_task(cluster: Cluster) -> None:
    async with SchedulerClient(cluster.master, framework_info()) as client:
        framework = TestFramework(client)
        await framework.start()
        (offer,) = await framework.offers()
        task_id = await framework.running(offer)
        call = Call(type=Call.SHUTDOWN)
        call.shutdown.executor_id.value = task_id  # the command executor's id is the task's
        call.shutdown.agent_id.CopyFrom(offer.agent_id)
        await client.call(call)
        status = await framework.update(task_id, mesos_pb2.TASK_KILLED)
        assert "Terminated" in status.message
        failure = await framework.take(lambda e: e.type == scheduler_pb2.Event.FAILURE)
        assert failure.failure.executor_id.value == task_id
        await framework.stop()


async def test_suppress_revive_and_decline_filters(cluster: Cluster) -> None:
    async with SchedulerClient(cluster.master, framework_info()) as client:
        framework = TestFramework(client)
        await framework.start()
        (offer,) = await framework.offers()

        await client.call(Call(type=Call.SUPPRESS))
        await client.decline([offer.id.value], refuse_seconds=0)
        await asyncio.sleep(0.6)  # several 100 ms allocation cycles
        assert not [e for e in framework.events if e.type == scheduler_pb2.Event.OFFERS][1:]

        await client.call(Call(type=Call.REVIVE))
        (offer,) = await framework.offers(timeout=30)

        # A decline with refuse_seconds=2 keeps the agent away from us for that long.
        declined = time.monotonic()
        await client.decline([offer.id.value], refuse_seconds=2)
        await framework.offers(timeout=30)
        assert time.monotonic() - declined >= 1.9
        await framework.stop()


async def test_failover_keeps_tasks_and_timeout_removes_them(cluster: Cluster) -> None:
    info = framework_info(failover_timeout=60.0)
    async with SchedulerClient(cluster.master, info) as client:
        framework = TestFramework(client)
        framework_id = await framework.start()
        (offer,) = await framework.offers()
        task_id = await framework.running(offer)
        await framework.stop()
    # Disconnected: the framework is inactive but kept for failover_timeout.
    frameworks = cluster.master_url + "/master/frameworks"
    await until(lambda: [f["connected"] for f in get_json(frameworks)["frameworks"]] == [False],
                60, "the master to see the framework disconnect")
    (state,) = get_json(frameworks)["frameworks"]
    assert state["id"] == framework_id and not state["active"] and not state["connected"]

    info = framework_info(failover_timeout=1.0)
    info.id.value = framework_id
    async with SchedulerClient(cluster.master, info) as client:
        framework = TestFramework(client)
        assert await framework.start() == framework_id
        await client.call(Call(type=Call.RECONCILE))
        status = await framework.update(task_id, ack=False)
        assert status.state == mesos_pb2.TASK_RUNNING
        await framework.stop()
    # Gone again, now with a 1 s failover timeout: the framework is removed, its task killed.
    await until(lambda: not get_json(frameworks)["frameworks"], 60,
                "the master to remove the framework")
    (done,) = get_json(frameworks)["completed_frameworks"]
    assert done["id"] == framework_id
    assert [t["state"] for t in done["completed_tasks"]] == ["TASK_KILLED"]
    agent = f"http://127.0.0.1:{cluster.agent_ports[0]}/state"
    await until(lambda: get_json(agent)["frameworks"] == [], 60,
                "the agent to let the framework go")


# The agent's first retry of an unacknowledged update (Mesos: 10 s, the flag's default).
RETRY = 1.0


@pytest.fixture
def quick_retry(tmp_path: Any) -> Iterator[Cluster]:
    flags = [f"--status_update_retry_interval_min={RETRY:g}secs"]
    with running_cluster(str(tmp_path), agent_flags=flags) as running:
        yield running


async def test_unacknowledged_update_is_resent_with_the_same_uuid(quick_retry: Cluster) -> None:
    cluster = quick_retry
    async with SchedulerClient(cluster.master, framework_info()) as client:
        framework = TestFramework(client)
        await framework.start()
        (offer,) = await framework.offers()
        # The agent sends the first copy after the launch (its retry timer starts then), which
        # a loaded machine may deliver late: the retry interval is timed from before.
        launched = time.monotonic()
        task_id = await framework.launch(offer, "sleep 300")
        first = await framework.update(task_id, mesos_pb2.TASK_STARTING, ack=False)
        again = await framework.update(task_id, mesos_pb2.TASK_STARTING, ack=False)
        assert again.uuid == first.uuid
        assert time.monotonic() - launched >= RETRY * 0.9  # not before the retry interval
        # Nothing further arrives until the acknowledgement; then RUNNING does.
        assert not [e for e in framework.events if e.type == scheduler_pb2.Event.UPDATE
                    and e.update.status.state == mesos_pb2.TASK_RUNNING]
        await client.acknowledge(again)
        await framework.update(task_id, mesos_pb2.TASK_RUNNING)
        await framework.stop()


async def test_kill_escalates_to_sigkill_after_the_grace_period(cluster: Cluster) -> None:
    async with SchedulerClient(cluster.master, framework_info()) as client:
        framework = TestFramework(client)
        await framework.start()
        (offer,) = await framework.offers()
        # The task ignores SIGTERM, so only the SIGKILL after the grace period ends it.
        task_id = await framework.running(offer, "trap '' TERM; sleep 300")
        call = Call(type=Call.KILL)
        call.kill.task_id.value = task_id
        call.kill.kill_policy.grace_period.nanoseconds = 1_000_000_000
        asked = time.monotonic()
        await client.call(call)
        status = await framework.update(task_id, mesos_pb2.TASK_KILLED)
        assert time.monotonic() - asked >= 0.9
        assert status.message == "Command terminated with signal Killed"

        # Killing a task the master does not know answers with reconciliation: TASK_LOST.
        call = Call(type=Call.KILL)
        call.kill.task_id.value = "no-such-task"
        await client.call(call)
        lost = await framework.update("no-such-task", ack=False)
        assert lost.state == mesos_pb2.TASK_LOST
        await framework.stop()
