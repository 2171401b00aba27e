"""Partitions: an agent that stops answering pings goes unreachable and comes back."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from agent_runtime.proto import mesos_pb2, scheduler_pb2
from agent_runtime.scheduler.client import SchedulerClient
from tests.harness.cluster import Cluster, get_json, running_cluster
from tests.harness.framework import TestFramework, command_task, framework_info

Call = scheduler_pb2.Call
Status = mesos_pb2.TaskStatus
# Pings stay on for the whole test: short enough to go unreachable in seconds, long enough that
# a stalled agent or master on a loaded host (CI) does not miss three in a row.
PING = ["--agent_ping_timeout=1secs", "--max_agent_ping_timeouts=3"]


@pytest.fixture
def pinged(tmp_path: Any) -> Iterator[Cluster]:
    with running_cluster(str(tmp_path), master_flags=PING) as cluster:
        yield cluster


async def _running(client: SchedulerClient, task_id: str) -> TestFramework:
    framework = TestFramework(client)
    await framework.start()
    offers = await framework.offers()
    task = command_task(offers[0], "sleep 300", task_id)
    await client.accept([offers[0].id.value], [task], refuse_seconds=0)
    await framework.update(task_id, mesos_pb2.TASK_STARTING)
    await framework.update(task_id, mesos_pb2.TASK_RUNNING)
    # Leave the rest of the agent to the other framework.
    rest = await framework.offers()
    await client.decline([o.id.value for o in rest], refuse_seconds=300)
    return framework


async def test_stopped_agent_goes_unreachable_and_comes_back(pinged: Cluster) -> None:
    aware = framework_info(name="aware")
    aware.capabilities.add(type=mesos_pb2.FrameworkInfo.Capability.PARTITION_AWARE)
    async with SchedulerClient(pinged.master, aware) as aware_client, \
            SchedulerClient(pinged.master, framework_info(name="plain")) as plain_client:
        first = await _running(aware_client, "aware-task")
        second = await _running(plain_client, "plain-task")

        agent = pinged.processes["agent0"]
        stopped = time.monotonic()
        agent.send_signal(signal.SIGSTOP)  # the TCP link stays up; only the pongs stop
        try:
            status = await first.update("aware-task", mesos_pb2.TASK_UNREACHABLE, timeout=60,
                                        ack=False)
            assert status.source == Status.SOURCE_MASTER
            assert "unreachable" in status.message
            lost = await second.update("plain-task", mesos_pb2.TASK_LOST, timeout=60, ack=False)
            assert lost.reason == Status.REASON_AGENT_REMOVED
            assert time.monotonic() - stopped < 30  # 3 pings of 1 s, not the default 75 s
            state = get_json(pinged.master_url + "/master/state")
            assert state["unreachable_slaves"] == 1
            (slave,) = state["slaves"]
            assert slave["active"] is False
            frameworks = {f["name"]: f for f in state["frameworks"]}
            assert [t["id"] for t in frameworks["aware"]["unreachable_tasks"]] == ["aware-task"]
            # Reconciliation says the same while the agent is away.
            await aware_client.call(Call(type=Call.RECONCILE))
            again = await first.update("aware-task", ack=False)
            assert again.state == mesos_pb2.TASK_UNREACHABLE
        finally:
            agent.send_signal(signal.SIGCONT)

        # Back: both tasks are RUNNING again, nothing was killed.
        back = await first.update("aware-task", mesos_pb2.TASK_RUNNING, timeout=60, ack=False)
        assert back.reason == Status.REASON_AGENT_REREGISTERED
        await second.update("plain-task", mesos_pb2.TASK_RUNNING, timeout=60, ack=False)
        pinged.wait_agents(1)
        state = get_json(pinged.master_url + "/master/state")
        assert state["unreachable_slaves"] == 0
        assert {t["id"] for f in state["frameworks"] for t in f["tasks"]} == {
            "aware-task", "plain-task"}
        await first.stop()
        await second.stop()
