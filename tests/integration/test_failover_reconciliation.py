"""Reconciliation across a master failover, as Mesos: the new master recovers the admitted agents
from the registry (``--work_dir``); until an agent re-registers it does not answer for tasks it
does not know there (the framework retries), and an agent that stays away for
``--agent_reregister_timeout`` becomes unreachable: TASK_UNREACHABLE (PARTITION_AWARE) or
TASK_LOST from then on.
"""

from __future__ import annotations

import asyncio
import os
import signal
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
Event = scheduler_pb2.Event
Status = mesos_pb2.TaskStatus
# Long enough that the checks "within the window" (a master's start, a subscription and a second
# of waiting for answers that must not come) finish inside it on a loaded machine.
REREGISTER_TIMEOUT = 15.0


@pytest.fixture
def durable(tmp_path: Any) -> Iterator[Cluster]:
    flags = [f"--work_dir={os.path.join(str(tmp_path), 'master')}",
             f"--agent_reregister_timeout={REREGISTER_TIMEOUT:g}secs"]
    with running_cluster(str(tmp_path), master_flags=flags) as cluster:
        yield cluster


def _reconcile(task_id: str, agent_id: str | None) -> Call:
    call = Call(type=Call.RECONCILE)
    item = call.reconcile.tasks.add()
    item.task_id.value = task_id
    if agent_id is not None:
        item.agent_id.value = agent_id
    return call


async def _answers(framework: TestFramework, task_id: str, agent_id: str | None,
                   expect: int = 1) -> list[mesos_pb2.TaskStatus]:
    """Explicit reconciliation of one task; the updates that come back: once ``expect`` have
    (waiting as long as a loaded machine may need), or, expecting none, within half a second."""
    before = len(framework.events)

    def answers() -> list[mesos_pb2.TaskStatus]:
        return [e.update.status for e in framework.events[before:]
                if e.type == Event.UPDATE and e.update.status.task_id.value == task_id]

    await framework.client.call(_reconcile(task_id, agent_id))
    if expect:
        await until(lambda: len(answers()) >= expect, 30, f"an answer for {task_id}")
    else:
        await asyncio.sleep(0.5)
    return answers()


async def test_reconciliation_waits_for_recovered_agents_then_says_unreachable(
        durable: Cluster) -> None:
    info = framework_info(name="aware", failover_timeout=300.0)
    info.capabilities.add(type=mesos_pb2.FrameworkInfo.Capability.PARTITION_AWARE)
    async with SchedulerClient(durable.master, info) as client:
        framework = TestFramework(client)
        await framework.start()
        offers = await framework.offers()
        agent_id = offers[0].agent_id.value
        await framework.running(offers[0], "sleep 300", "survivor")
        await framework.stop()

    # The agent cannot re-register (stopped) while the master is replaced.
    agent = durable.processes["agent0"]
    agent.send_signal(signal.SIGSTOP)
    try:
        durable.kill("master", signal.SIGKILL)
        # The new master starts its timer before it first answers: the window opens between.
        started = time.monotonic()
        await asyncio.to_thread(durable.start_master)
        state = get_json(durable.master_url + "/master/state")
        assert state["slaves"] == []
        assert [s["id"] for s in state["recovered_slaves"]] == [agent_id]

        async with SchedulerClient(durable.master, info) as client:
            framework = TestFramework(client)
            await framework.start()
            # Within the window: no answer for the task on the recovered agent, nor for one
            # with no agent named (it could be on that agent), nor a KILL's reconciliation.
            assert await _answers(framework, "survivor", agent_id, expect=0) == []
            assert await _answers(framework, "survivor", None, expect=0) == []
            await client.kill("survivor", agent_id)
            # An agent the registry never admitted is answered for at once.
            (unknown,) = await _answers(framework, "elsewhere", "no-such-agent")
            assert unknown.state == mesos_pb2.TASK_UNKNOWN
            assert unknown.reason == Status.REASON_RECONCILIATION
            assert time.monotonic() - started < REREGISTER_TIMEOUT

            # After --agent_reregister_timeout the agent is unreachable; so is its task.
            failure = await framework.take(lambda e: e.type == Event.FAILURE,
                                           timeout=REREGISTER_TIMEOUT + 30)
            assert failure.failure.agent_id.value == agent_id
            assert time.monotonic() - started >= REREGISTER_TIMEOUT - 0.5
            (status,) = await _answers(framework, "survivor", agent_id)
            assert status.state == mesos_pb2.TASK_UNREACHABLE
            assert status.source == Status.SOURCE_MASTER
            assert status.unreachable_time.nanoseconds > 0
            (status,) = await _answers(framework, "survivor", None)
            assert status.state == mesos_pb2.TASK_UNKNOWN  # no agent named, none recovered
            state = get_json(durable.master_url + "/master/state")
            assert (state["recovered_slaves"], state["unreachable_slaves"]) == ([], 1)
            await framework.stop()
    finally:
        agent.send_signal(signal.SIGCONT)

    # Back: the agent re-registers, its task is adopted and known again.
    await asyncio.to_thread(durable.wait_agents, 1)
    async with SchedulerClient(durable.master, info) as client:
        framework = TestFramework(client)
        await framework.start()
        (status,) = await _answers(framework, "survivor", agent_id)
        assert status.state == mesos_pb2.TASK_RUNNING
        state = get_json(durable.master_url + "/master/state")
        assert state["unreachable_slaves"] == 0
        await framework.stop()


async def test_an_agent_that_comes_back_in_time_is_answered_for(durable: Cluster) -> None:
    info = framework_info(name="plain", failover_timeout=300.0)
    async with SchedulerClient(durable.master, info) as client:
        framework = TestFramework(client)
        await framework.start()
        offers = await framework.offers()
        agent_id = offers[0].agent_id.value
        await framework.running(offers[0], "sleep 300", "kept")
        await framework.stop()

    durable.kill("master", signal.SIGKILL)
    await asyncio.to_thread(durable.start_master)
    elected = time.monotonic()  # the new master's timer started before this
    await asyncio.to_thread(durable.wait_agents, 1)
    async with SchedulerClient(durable.master, info) as client:
        framework = TestFramework(client)
        await framework.start()
        (status,) = await _answers(framework, "kept", agent_id)
        assert status.state == mesos_pb2.TASK_RUNNING
        # A task the re-registered agent does not have: TASK_LOST (not PARTITION_AWARE).
        (status,) = await _answers(framework, "never-launched", agent_id)
        assert status.state == mesos_pb2.TASK_LOST
        # Nothing is left to wait for: the timer finds no recovered agent.
        await asyncio.sleep(elected + REREGISTER_TIMEOUT + 0.5 - time.monotonic())
        state = get_json(durable.master_url + "/master/state")
        assert (state["unreachable_slaves"], [s["id"] for s in state["slaves"]]) == (0, [agent_id])
        await framework.stop()
