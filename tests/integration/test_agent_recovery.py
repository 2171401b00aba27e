"""Agent recovery: kill -9 the agent, start it again; checkpointing frameworks lose nothing."""

from __future__ import annotations

import asyncio
import signal
import uuid
from typing import Any

from agent_runtime.proto import mesos_pb2, scheduler_pb2
from agent_runtime.scheduler.client import SchedulerClient
from tests.harness.cluster import Cluster, agent_state, get_json
from tests.harness.framework import TestFramework, framework_info
from tests.harness.processes import in_directory, with_argv
from tests.harness.wait import until

Call = scheduler_pb2.Call
Status = mesos_pb2.TaskStatus


async def _next_state(framework: TestFramework, task_id: str,
                      timeout: float = 20) -> mesos_pb2.TaskStatus:
    """The next update of the task that is not a repeat of RUNNING, acknowledging each: a
    RUNNING whose acknowledgement a crash swallowed comes again first (same uuid)."""
    status = await framework.update(task_id, timeout=timeout)
    while status.state == mesos_pb2.TASK_RUNNING:
        status = await framework.update(task_id, timeout=timeout)
    return status


def _restart_agent(cluster: Cluster) -> None:
    cluster.kill("agent0", signal.SIGKILL)
    cluster.start_agent(0)


def _agent_state(cluster: Cluster) -> dict[str, Any] | None:
    """The agent's /state, or None while the restarted agent does not answer yet."""
    try:
        return agent_state(cluster)
    except OSError:
        return None


def _executors(cluster: Cluster) -> list[dict[str, Any]]:
    state = _agent_state(cluster)
    return [e for f in (state or {}).get("frameworks", []) for e in f["executors"]]


def _completed_executors(cluster: Cluster) -> list[dict[str, Any]]:
    """Ended executors, also of a framework that moved to the completed ones with its last."""
    state = _agent_state(cluster) or {}
    frameworks = state.get("frameworks", []) + state.get("completed_frameworks", [])
    return [e for f in frameworks for e in f["completed_executors"]]


async def test_running_task_survives_agent_restart_and_stays_killable(cluster: Cluster) -> None:
    (before,) = get_json(cluster.master_url + "/master/slaves")["slaves"]
    async with SchedulerClient(cluster.master, framework_info(checkpoint=True)) as client:
        framework = TestFramework(client)
        await framework.start()
        (offer,) = await framework.offers()
        task_id = await framework.running(offer, "sleep 300", "survivor")

        _restart_agent(cluster)
        await asyncio.to_thread(cluster.wait_agents, 1)
        (after,) = get_json(cluster.master_url + "/master/slaves")["slaves"]
        assert after["id"] == before["id"]  # re-registered as the same agent

        # The executor re-subscribed to the new agent: the task is RUNNING and answers a KILL.
        await until(lambda: _executors(cluster), what="the executor to re-subscribe")
        (executor,) = _executors(cluster)
        assert [t["state"] for t in executor["tasks"]] == ["TASK_RUNNING"]
        await client.call(Call(type=Call.RECONCILE))
        answer = await framework.take(
            lambda e: e.type == scheduler_pb2.Event.UPDATE
            and e.update.status.reason == Status.REASON_RECONCILIATION)
        assert answer.update.status.state == mesos_pb2.TASK_RUNNING
        await client.kill(task_id)
        status = await _next_state(framework, task_id)
        assert status.state == mesos_pb2.TASK_KILLED
        assert status.source == Status.SOURCE_EXECUTOR
        await framework.stop()


async def test_task_that_ends_while_the_agent_is_down_reports_its_true_state(
        cluster: Cluster) -> None:
    async with SchedulerClient(cluster.master, framework_info(checkpoint=True)) as client:
        framework = TestFramework(client)
        await framework.start()
        (offer,) = await framework.offers()
        seconds = f"1.5{uuid.uuid4().int % 10**6:06d}"  # names the task's process
        task_id = await framework.running(offer, f"exec sleep {seconds}", "quick")
        cluster.kill("agent0", signal.SIGKILL)
        # The task ends meanwhile; its executor waits for an agent to tell.
        await until(lambda: not with_argv("sleep", seconds), what="the task to end")
        cluster.start_agent(0)
        finished = await _next_state(framework, task_id)
        assert finished.state == mesos_pb2.TASK_FINISHED
        assert finished.source == Status.SOURCE_EXECUTOR
        assert finished.message == "Command exited with status 0"
        await framework.stop()


async def test_unacknowledged_update_is_resent_after_agent_restarts(cluster: Cluster) -> None:
    async with SchedulerClient(cluster.master, framework_info(checkpoint=True)) as client:
        framework = TestFramework(client)
        await framework.start()
        (offer,) = await framework.offers()
        task_id = await framework.launch(offer, "sleep 300", "patient")
        first = await framework.update(task_id, mesos_pb2.TASK_STARTING, ack=False)
        for _ in range(2):
            _restart_agent(cluster)
            again = await framework.update(task_id, mesos_pb2.TASK_STARTING, ack=False,
                                           timeout=20)
            assert again.uuid == first.uuid
        await client.acknowledge(first)
        running = await framework.update(task_id, mesos_pb2.TASK_RUNNING, timeout=20)
        # Exactly once: no further copy of STARTING after the acknowledgement.
        await client.acknowledge(running)
        starting = [e for e in framework.events if e.type == scheduler_pb2.Event.UPDATE
                    and e.update.status.state == mesos_pb2.TASK_STARTING]
        assert len(starting) == 3
        await framework.stop()


async def test_non_checkpointing_framework_loses_its_executor(cluster: Cluster) -> None:
    async with SchedulerClient(cluster.master, framework_info(checkpoint=False)) as client:
        framework = TestFramework(client)
        await framework.start()
        (offer,) = await framework.offers()
        task_id = await framework.running(offer, "sleep 300", "fragile")
        _restart_agent(cluster)
        await asyncio.to_thread(cluster.wait_agents, 1)
        # Nothing was checkpointed: the restarted agent does not know the task, and the
        # executor, left without an agent, killed it.
        await until(lambda: (_agent_state(cluster) or {}).get("frameworks") == [],
                    what="the restarted agent to know no framework")
        await framework.stop()
        del task_id


async def test_terminal_update_of_an_ended_executor_survives_agent_restart(
        cluster: Cluster) -> None:
    async with SchedulerClient(cluster.master, framework_info(checkpoint=True)) as client:
        framework = TestFramework(client)
        await framework.start()
        (offer,) = await framework.offers()
        task_id = await framework.running(offer, "true", "done-early")
        finished = await framework.update(task_id, mesos_pb2.TASK_FINISHED, ack=False)
        # The executor gives up waiting for the acknowledgement and exits.
        (executor,) = _executors(cluster) or _completed_executors(cluster)
        await until(lambda: not in_directory(executor["directory"]),
                    what="the executor to exit")
        _restart_agent(cluster)
        again = await framework.update(task_id, mesos_pb2.TASK_FINISHED, timeout=20)
        assert again.uuid == finished.uuid
        # Never reported lost: the restarted agent told the master the task's update was due.
        states = [e.update.status.state for e in framework.events
                  if e.type == scheduler_pb2.Event.UPDATE
                  and e.update.status.task_id.value == task_id]
        assert mesos_pb2.TASK_LOST not in states and mesos_pb2.TASK_GONE not in states
        await framework.stop()
