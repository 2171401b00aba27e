"""Third-party executors: a scheduler launches tasks with its own ExecutorInfo, and a custom
executor (``executors/echo_executor.py``: standard library only, JSON on the wire) drives the v1
executor API against a real master and agent.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import jwt
import pytest

from agent_runtime.proto import mesos_pb2, scheduler_pb2
from tests.harness import echo_executor
from tests.harness.cluster import Cluster, get_json, running_cluster
from tests.harness.custom_executor import EXECUTOR_ID, custom_task, report_of, scheduler
from tests.harness.framework import command_task

Call = scheduler_pb2.Call
Event = scheduler_pb2.Event
Status = mesos_pb2.TaskStatus


def agent_post(cluster: Cluster, body: str, content_type: str = "application/json",
               method: str = "POST", token: str | None = None) -> tuple[int, str]:
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"http://127.0.0.1:{cluster.agent_ports[0]}/api/v1/executor", data=body.encode(),
        headers=headers, method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()


async def test_custom_executor_lifecycle(cluster: Cluster) -> None:
    async with scheduler(cluster, checkpoint=True) as framework:
        framework_id = framework.client.framework_id
        assert framework_id is not None
        offer = await framework.offer()
        agent_id = offer.agent_id.value
        await framework.launch_modes(offer, "first", "finish")

        running = await framework.update("first", mesos_pb2.TASK_RUNNING)
        assert running.source == Status.SOURCE_EXECUTOR
        assert running.executor_id.value == EXECUTOR_ID
        assert running.agent_id.value == agent_id
        report = report_of(running)
        env = report["env"]
        assert env["MESOS_AGENT_ENDPOINT"] == f"127.0.0.1:{cluster.agent_ports[0]}"
        assert env["MESOS_FRAMEWORK_ID"] == framework_id
        assert env["MESOS_EXECUTOR_ID"] == EXECUTOR_ID
        assert env["MESOS_SLAVE_ID"] == agent_id
        assert env["MESOS_CHECKPOINT"] == "1"
        assert env["MESOS_RECOVERY_TIMEOUT"] and env["MESOS_SUBSCRIPTION_BACKOFF_MAX"]
        sandbox = env["MESOS_SANDBOX"]
        assert env["MESOS_DIRECTORY"] == sandbox
        assert os.path.isdir(sandbox)
        assert os.path.realpath(report["cwd"]) == os.path.realpath(sandbox)
        assert sandbox.startswith(cluster.work_dir + os.sep)
        container_id = report["subscribed"]["container_id"]
        assert env["MESOS_CONTAINER_ID"] == container_id
        assert sandbox.endswith(os.path.join(
            "frameworks", framework_id, "executors", EXECUTOR_ID, "runs", container_id))
        assert report["subscribed"] == {"executor_id": EXECUTOR_ID, "framework_id": framework_id,
                                        "agent_id": agent_id, "container_id": container_id}
        assert report["launched"] == ["first"]

        finished = await framework.update("first", mesos_pb2.TASK_FINISHED)
        assert finished.data == b"done first"
        assert finished.source == Status.SOURCE_EXECUTOR
        # Sent by the executor only after ACKNOWLEDGED events for both of its updates.
        told = await framework.message(b"acked first")
        assert told.executor_id.value == EXECUTOR_ID
        assert told.agent_id.value == agent_id

        call = Call(type=Call.MESSAGE)
        call.message.agent_id.value = agent_id
        call.message.executor_id.value = EXECUTOR_ID
        call.message.data = b"ping \x00\xff"
        await framework.client.call(call)
        echoed = await framework.message(b"echo:ping \x00\xff")
        assert echoed.executor_id.value == EXECUTOR_ID

        # A second task on the same executor: the same process gets a second LAUNCH.
        offer = await framework.offer()
        await framework.launch_modes(offer, "second", "run")
        second = report_of(await framework.update("second", mesos_pb2.TASK_RUNNING))
        assert second["pid"] == report["pid"]
        assert second["subscribed"]["container_id"] == container_id
        assert second["launched"] == ["first", "second"]

        await framework.client.kill("second", agent_id)
        killed = await framework.update("second", mesos_pb2.TASK_KILLED)
        assert killed.source == Status.SOURCE_EXECUTOR

        call = Call(type=Call.SHUTDOWN)
        call.shutdown.executor_id.value = EXECUTOR_ID
        call.shutdown.agent_id.value = agent_id
        await framework.client.call(call)
        failure = await framework.failure(EXECUTOR_ID)
        assert failure.agent_id.value == agent_id
        assert failure.status == 0
        assert os.path.exists(os.path.join(sandbox, "shutdown"))
        # The executor's own resources went back with it: the whole agent is offered again.
        await framework.offer_of(4.0)
        # Neither task gets an update of the agent's making after the executor ended.
        await asyncio.sleep(0.3)
        late = [e for e in framework.events if e.type == Event.UPDATE
                and e.update.status.source == Status.SOURCE_AGENT]
        assert not late, late


async def test_custom_executor_exit_fails_its_running_task(cluster: Cluster) -> None:
    async with scheduler(cluster) as framework:
        offer = await framework.offer()
        await framework.launch_modes(offer, "doomed", "exit")
        running = await framework.update("doomed", mesos_pb2.TASK_RUNNING)
        assert report_of(running)["env"]["MESOS_CHECKPOINT"] == "0"
        failed = await framework.update("doomed", mesos_pb2.TASK_FAILED)
        assert failed.source == Status.SOURCE_AGENT
        assert failed.reason == Status.REASON_EXECUTOR_TERMINATED
        assert failed.executor_id.value == EXECUTOR_ID
        assert failed.agent_id.value == offer.agent_id.value
        failure = await framework.failure(EXECUTOR_ID)
        assert failure.status != 0


async def test_executor_api_error_answers(cluster: Cluster) -> None:
    async with scheduler(cluster) as framework:
        framework_id = framework.client.framework_id
        assert framework_id is not None
        offer = await framework.offer()
        await framework.launch_modes(offer, "prober", "run")
        probes = report_of(await framework.update("prober", mesos_pb2.TASK_RUNNING))["probes"]
        codes = {name: code for name, (code, _) in probes.items()}
        assert codes == {
            "update_before_subscribe": 403,
            "update_staging": 400,
            "update_short_uuid": 400,
            "update_no_uuid": 400,
            "update_no_task_id": 400,
            "update_no_state": 400,
            "message_no_data": 400,
            "update_source_agent": 400,
            "update_other_executor_id": 400,
            # Its token names its own ids: for any other executor it is not authorized.
            "unknown_executor": 403,
            "unknown_framework": 403,
            "heartbeat": 202,
        }, probes
        assert "not subscribed" in probes["update_before_subscribe"][1]
        assert "TASK_STAGING" in probes["update_staging"][1]
        assert "uuid" in probes["update_short_uuid"][1]
        assert "uuid" in probes["update_no_uuid"][1]
        assert "task_id" in probes["update_no_task_id"][1]
        assert "state" in probes["update_no_state"][1]
        assert "data" in probes["message_no_data"][1]
        assert "SOURCE_EXECUTOR" in probes["update_source_agent"][1]
        assert "no-such-executor" in probes["unknown_executor"][1]
        assert "no-such-framework" in probes["unknown_framework"][1]

        # A client that is not the executor is not authenticated; with the executor's own
        # token (as the agent signs it) it gets the same answers the executor got.
        containers = get_json(f"http://127.0.0.1:{cluster.agent_ports[0]}/containers")
        (container_id,) = [c["container_id"] for c in containers
                           if c["executor_id"] == EXECUTOR_ID]
        with open(os.path.join(cluster.work_dir, "agent0", "meta", "executor_secret_key"),
                  "rb") as handle:
            token = jwt.encode({"cid": container_id, "fid": framework_id, "eid": EXECUTOR_ID},
                               handle.read(), algorithm="HS256")
        def update(state: str, uuid: str = "AAECAwQFBgcICQoLDA0ODw==") -> str:
            return json.dumps({
                "executor_id": {"value": EXECUTOR_ID}, "framework_id": {"value": framework_id},
                "type": "UPDATE", "update": {"status": {
                    "task_id": {"value": "prober"}, "state": state,
                    "source": "SOURCE_EXECUTOR", "uuid": uuid}},
            })

        code, text = agent_post(cluster, update("TASK_RUNNING"))
        assert code == 401 and "Bearer" in text, text
        code, text = agent_post(cluster, update("TASK_STAGING"), token=token)
        assert (code, "TASK_STAGING" in text) == (400, True), text
        code, text = agent_post(cluster, update("TASK_RUNNING", uuid="AAEC"), token=token)
        assert (code, "uuid" in text) == (400, True), text
        code, text = agent_post(cluster, update("TASK_RUNNING").replace(EXECUTOR_ID, "ghost"),
                                token=token)
        assert (code, "ghost" in text) == (403, True), text
        code, text = agent_post(cluster, '{"type": "HEARTBEAT"}', token=token)
        assert code == 400 and text, text
        code, text = agent_post(cluster, "{not json", token=token)
        assert code == 400 and text, text
        code, text = agent_post(cluster, update("TASK_RUNNING"), content_type="text/plain",
                                token=token)
        assert code == 415 and text, text
        code, text = agent_post(cluster, "", method="GET")
        assert code == 405, text
        # None of the refused updates or messages reached the scheduler.
        await framework.client.kill("prober", offer.agent_id.value)
        await framework.update("prober", mesos_pb2.TASK_KILLED)
        states = [e.update.status.state for e in framework.events if e.type == Event.UPDATE]
        assert states == [mesos_pb2.TASK_RUNNING, mesos_pb2.TASK_KILLED]
        assert not [e for e in framework.events if e.type == Event.MESSAGE]


async def test_two_tasks_in_one_accept_share_one_executor(cluster: Cluster) -> None:
    # The second task reaches the agent while the executor is still starting: it is queued and
    # delivered after SUBSCRIBED, to the same executor process.
    async with scheduler(cluster) as framework:
        offer = await framework.offer()
        await framework.launch_modes(offer, "pair", "finish", "finish")
        reports = [report_of(await framework.update(task_id, mesos_pb2.TASK_RUNNING))
                   for task_id in ("pair", "pair-1")]
        assert reports[0]["pid"] == reports[1]["pid"]
        assert sorted(reports[1]["launched"]) == ["pair", "pair-1"]
        for task_id in ("pair", "pair-1"):
            finished = await framework.update(task_id, mesos_pb2.TASK_FINISHED)
            assert finished.data == f"done {task_id}".encode()
            await framework.message(f"acked {task_id}".encode())


@pytest.fixture
def long_grace(tmp_path: Any) -> Iterator[Cluster]:
    """An agent whose default grace period is a minute: a slow machine's kill then still tells
    ExecutorInfo's grace period from it."""
    with running_cluster(str(tmp_path),
                         agent_flags=["--executor_shutdown_grace_period=60secs"]) as running:
        yield running


async def test_executor_shutdown_grace_period_from_executor_info(long_grace: Cluster) -> None:
    # The executor ignores SHUTDOWN: the agent kills it once ExecutorInfo's grace period (not the
    # agent's default, a minute here) is over, and fails the task it left running.
    cluster = long_grace
    async with scheduler(cluster) as framework:
        offer = await framework.offer()
        task = custom_task(offer, "stubborn", "stubborn")
        task.executor.shutdown_grace_period.nanoseconds = 500_000_000
        await framework.client.accept([offer.id.value], [task], refuse_seconds=0)
        running = await framework.update("stubborn", mesos_pb2.TASK_RUNNING)
        env = report_of(running)["env"]
        assert env["MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"] == "0.5secs"
        call = Call(type=Call.SHUTDOWN)
        call.shutdown.executor_id.value = EXECUTOR_ID
        call.shutdown.agent_id.CopyFrom(offer.agent_id)
        started = time.monotonic()
        await framework.client.call(call)
        failed = await framework.update("stubborn", mesos_pb2.TASK_FAILED, timeout=30)
        assert time.monotonic() - started < 30
        assert failed.source == Status.SOURCE_AGENT
        assert failed.reason == Status.REASON_EXECUTOR_TERMINATED
        await framework.failure(EXECUTOR_ID)
        assert not os.path.exists(os.path.join(env["MESOS_SANDBOX"], "shutdown"))


async def test_executor_id_that_would_leave_the_sandbox_is_refused(cluster: Cluster) -> None:
    async with scheduler(cluster) as framework:
        offer = await framework.offer()
        bad_ids = ["../../../../../../escape", "..", "", "a/b", "back\\slash", "tab\there"]
        tasks = [custom_task(offer, f"bad-{index}", "run", executor_id=executor_id)
                 for index, executor_id in enumerate(bad_ids)]
        await framework.client.accept([offer.id.value], tasks, refuse_seconds=0)
        for index in range(len(bad_ids)):
            error = await framework.update(f"bad-{index}", mesos_pb2.TASK_ERROR)
            assert error.reason == Status.REASON_TASK_INVALID, error
        agent_dir = os.path.join(cluster.work_dir, "agent0")
        assert not os.path.exists(os.path.join(agent_dir, "escape"))
        sandboxes = [root for root, _, files in os.walk(cluster.work_dir) if "stdout" in files]
        assert sandboxes == []


def _framework_state(cluster: Cluster, framework_id: str) -> dict[str, Any]:
    state = get_json(cluster.master_url + "/master/state")
    (framework,) = [f for f in state["frameworks"] if f["id"] == framework_id]
    result: dict[str, Any] = framework
    return result


async def test_master_state_lists_custom_executors_and_counts_what_they_hold(
        cluster: Cluster) -> None:
    # As Mesos: /master/state lists a framework's custom executors (ExecutorInfo JSON plus
    # slave_id), not the agent's command executors; their resources count as used.
    async with scheduler(cluster) as framework:
        framework_id = framework.client.framework_id
        assert framework_id is not None
        offer = await framework.offer()
        agent_id = offer.agent_id.value
        await framework.launch_modes(offer, "listed", "run")
        await framework.update("listed", mesos_pb2.TASK_RUNNING)
        offer = await framework.offer()
        await framework.client.accept([offer.id.value],
                                      [command_task(offer, "sleep 30", "plain")],
                                      refuse_seconds=0)
        await framework.update("plain", mesos_pb2.TASK_RUNNING)

        entry = _framework_state(cluster, framework_id)
        (executor,) = entry["executors"]
        assert executor["command"]["value"] == shlex.join([sys.executable,
                                                            echo_executor.__file__])
        del executor["command"]
        assert executor == {
            "executor_id": EXECUTOR_ID, "name": "echo executor", "framework_id": framework_id,
            "resources": {"cpus": 0.1, "gpus": 0, "mem": 32, "disk": 0}, "role": "*",
            "type": "CUSTOM", "slave_id": agent_id,
        }
        # Two tasks of 0.1 cpus / 32 MB and the custom executor's own 0.1 / 32.
        used = {"cpus": 0.3, "gpus": 0, "mem": 96, "disk": 0}
        assert {k: round(v, 6) for k, v in entry["used_resources"].items()} == used
        (slave,) = get_json(cluster.master_url + "/master/slaves")["slaves"]
        assert {k: round(v, 6) for k, v in slave["used_resources"].items()} == used
        metrics = get_json(cluster.master_url + "/metrics/snapshot")
        assert round(metrics["master/cpus_used"], 6) == 0.3

        call = Call(type=Call.SHUTDOWN)
        call.shutdown.executor_id.value = EXECUTOR_ID
        call.shutdown.agent_id.value = agent_id
        await framework.client.call(call)
        await framework.failure(EXECUTOR_ID)
        entry = _framework_state(cluster, framework_id)
        assert entry["executors"] == []
        assert round(entry["used_resources"]["cpus"], 6) == 0.1  # the command task's


async def test_a_task_with_another_executor_info_for_the_same_executor_is_refused(
        cluster: Cluster) -> None:
    # Mesos's validateCompatibleExecutorInfo: TASK_ERROR, and the executor keeps running.
    async with scheduler(cluster) as framework:
        offer = await framework.offer()
        await framework.launch_modes(offer, "first", "run")
        running = report_of(await framework.update("first", mesos_pb2.TASK_RUNNING))
        offer = await framework.offer()
        renamed = custom_task(offer, "renamed", "run")
        renamed.executor.name = "another name"
        more_cpus = custom_task(offer, "more-cpus", "run")
        more_cpus.executor.resources[0].scalar.value = 0.2
        same = custom_task(offer, "same", "run")
        await framework.client.accept([offer.id.value], [renamed, more_cpus, same],
                                      refuse_seconds=0)
        for task_id in ("renamed", "more-cpus"):
            error = await framework.update(task_id, mesos_pb2.TASK_ERROR)
            assert error.source == Status.SOURCE_MASTER
            assert error.reason == Status.REASON_TASK_INVALID
            assert "ExecutorInfo is not compatible with existing ExecutorInfo" in error.message
        # An identical ExecutorInfo is fine: the same executor process runs it.
        second = report_of(await framework.update("same", mesos_pb2.TASK_RUNNING))
        assert second["pid"] == running["pid"]
