"""Task groups through the default executor, TASK_KILLING, kill policies and health checks, on a
real master and agent: every task below is a real process. One cluster serves the module (each
test tears its framework down), which keeps these tests within their share of the suite's time.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

from agent_runtime.proto import mesos_pb2, scheduler_pb2
from agent_runtime.scheduler.client import SchedulerClient
from tests.harness.cluster import (
    Cluster,
    agent_state,
    free_port,
    get_json,
    running_cluster,
)
from tests.harness.framework import TestFramework, command_task, framework_info, terminal
from tests.harness.wait import until

Call = scheduler_pb2.Call
Operation = mesos_pb2.Offer.Operation
Status = mesos_pb2.TaskStatus
Capability = mesos_pb2.FrameworkInfo.Capability


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(str(tmp_path_factory.mktemp("task-groups"))) as running:
        yield running


def _read(path: str) -> str:
    with open(path) as file:
        return file.read()


def _killing_framework() -> mesos_pb2.FrameworkInfo:
    info = framework_info()
    info.capabilities.add(type=Capability.TASK_KILLING_STATE)
    return info


def _group_call(offer: mesos_pb2.Offer, commands: dict[str, str],
                executor_type: int = mesos_pb2.ExecutorInfo.DEFAULT) -> Call:
    call = Call(type=Call.ACCEPT)
    call.accept.offer_ids.add().CopyFrom(offer.id)
    call.accept.filters.refuse_seconds = 0
    launch = call.accept.operations.add(type=Operation.LAUNCH_GROUP).launch_group
    launch.executor.type = executor_type  # type: ignore[assignment]
    launch.executor.executor_id.value = "pod-executor"
    for name, value in (("cpus", 0.1), ("mem", 32.0)):
        launch.executor.resources.add(name=name, type=mesos_pb2.Value.SCALAR).scalar.value = value
    for task_id, command in commands.items():
        task = command_task(offer, command, task_id, cpus=0.05, mem=16)
        volume = task.container.volumes.add(container_path="shared", mode=mesos_pb2.Volume.RW)
        volume.source.type = mesos_pb2.Volume.Source.SANDBOX_PATH
        volume.source.sandbox_path.type = mesos_pb2.Volume.Source.SandboxPath.PARENT
        volume.source.sandbox_path.path = "shared"
        task.container.type = mesos_pb2.ContainerInfo.MESOS
        launch.task_group.tasks.append(task)
    return call


async def test_a_group_of_two_runs_in_one_default_executor_and_a_kill_ends_both(
        cluster: Cluster) -> None:
    async with SchedulerClient(cluster.master, _killing_framework()) as client:
        framework = TestFramework(client)
        await framework.start()
        (offer,) = await framework.offers()
        # The two tasks share the executor's sandbox volume: one writes, the other reads.
        await client.call(_group_call(offer, {
            "web": "echo hello > shared/greeting; sleep 300",
            "sidecar": "while [ ! -s shared/greeting ]; do sleep 0.05; done; "
                       "cat shared/greeting; sleep 300"}))
        for task_id in ("web", "sidecar"):
            await framework.update(task_id, mesos_pb2.TASK_STARTING)
            running = await framework.update(task_id, mesos_pb2.TASK_RUNNING)
            assert running.executor_id.value == "pod-executor"
        tasks = get_json(f"{cluster.master_url}/tasks")["tasks"]
        assert sorted((t["id"], t["executor_id"], t["state"]) for t in tasks) == [
            ("sidecar", "pod-executor", "TASK_RUNNING"), ("web", "pod-executor", "TASK_RUNNING")]
        (executor,) = agent_state(cluster)["frameworks"][0]["executors"]
        assert executor["id"] == "pod-executor"
        assert sorted(t["id"] for t in executor["tasks"]) == ["sidecar", "web"]
        sidecar_out = os.path.join(executor["directory"], "tasks", "sidecar", "stdout")
        await until(lambda: os.path.exists(sidecar_out) and _read(sidecar_out),
                    what="the sidecar's output")
        assert _read(sidecar_out) == "hello\n"

        kill = Call(type=Call.KILL)
        kill.kill.task_id.value = "web"
        await client.call(kill)
        killing = await framework.update("web")
        assert killing.state == mesos_pb2.TASK_KILLING  # the framework asked for it
        assert (await terminal(framework, "web")).state == mesos_pb2.TASK_KILLED
        # Killing one task of a group kills the group.
        assert (await terminal(framework, "sidecar")).state == mesos_pb2.TASK_KILLED
        await client.call(Call(type=Call.TEARDOWN))
        await framework.stop()


async def test_a_failing_task_kills_its_group(cluster: Cluster) -> None:
    async with SchedulerClient(cluster.master, framework_info()) as client:
        framework = TestFramework(client, acknowledge_all=True)
        await framework.start()
        (offer,) = await framework.offers()
        await client.call(_group_call(offer, {"worker": "sleep 0.5; exit 3",
                                              "helper": "sleep 300"}))
        failed = await terminal(framework, "worker")
        assert failed.state == mesos_pb2.TASK_FAILED
        assert failed.message == "Command exited with status 3"
        assert (await terminal(framework, "helper")).state == mesos_pb2.TASK_KILLED
        await client.call(Call(type=Call.TEARDOWN))
        await framework.stop()


async def test_an_invalid_group_is_refused_whole_by_name(cluster: Cluster) -> None:
    async with SchedulerClient(cluster.master, framework_info()) as client:
        framework = TestFramework(client, acknowledge_all=True)
        await framework.start()
        (offer,) = await framework.offers()
        await client.call(_group_call(offer, {"a": "true", "b": "true"},
                                      executor_type=mesos_pb2.ExecutorInfo.CUSTOM))
        for task_id in ("a", "b"):
            status = await framework.update(task_id)
            assert status.state == mesos_pb2.TASK_ERROR
            assert status.reason == Status.REASON_TASK_GROUP_INVALID
            assert "must be of type DEFAULT" in status.message
        # A health check that cannot run is refused too, naming the field.
        (offer,) = await framework.offers()
        task = command_task(offer, "sleep 1", "no-port")
        task.health_check.type = mesos_pb2.HealthCheck.HTTP
        task.health_check.http.path = "/"
        await client.accept([offer.id.value], [task], refuse_seconds=0)
        status = await framework.update("no-port")
        assert status.state == mesos_pb2.TASK_ERROR
        assert "port between 1 and 65535" in status.message
        await client.call(Call(type=Call.TEARDOWN))
        await framework.stop()


async def test_an_http_health_check_turns_unhealthy_then_kills_the_task(
        cluster: Cluster) -> None:
    port = free_port()
    # Serves (healthy) until the test has seen it healthy and creates ``stop`` in the sandbox,
    # then the server stops while the task goes on (unhealthy).
    server = f"{sys.executable} -m http.server {port} --bind 127.0.0.1"
    stop = "while [ ! -e stop ]; do sleep 0.05; done"
    async with SchedulerClient(cluster.master, _killing_framework()) as client:
        framework = TestFramework(client, acknowledge_all=True)
        await framework.start()
        (offer,) = await framework.offers()
        task = command_task(offer, f"{server} & {stop}; kill $!; sleep 300", "web")
        check = task.health_check
        check.type = mesos_pb2.HealthCheck.HTTP
        check.http.port = port
        check.http.path = "/"
        check.delay_seconds = 0
        check.interval_seconds = 0.2
        check.timeout_seconds = 1
        check.grace_period_seconds = 5
        check.consecutive_failures = 2
        task.kill_policy.grace_period.nanoseconds = 500_000_000
        await client.accept([offer.id.value], [task], refuse_seconds=0)
        healthy = await framework.take(lambda e: e.type == e.UPDATE and e.update.status.HasField(
            "healthy") and e.update.status.healthy, timeout=60)
        assert healthy.update.status.state == mesos_pb2.TASK_RUNNING
        assert healthy.update.status.reason == Status.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED
        (sandbox,) = [e["directory"] for f in agent_state(cluster)["frameworks"]
                      for e in f["executors"] if e["id"] == "web"]
        open(os.path.join(sandbox, "stop"), "w").close()
        unhealthy = await framework.take(lambda e: e.type == e.UPDATE and e.update.status
                                         .HasField("healthy") and not e.update.status.healthy,
                                         timeout=60)
        assert unhealthy.update.status.state == mesos_pb2.TASK_RUNNING
        assert await framework.update("web", mesos_pb2.TASK_KILLING)
        killed = await terminal(framework, "web")
        assert killed.state == mesos_pb2.TASK_KILLED
        assert killed.HasField("healthy") and not killed.healthy
        await client.call(Call(type=Call.TEARDOWN))
        await framework.stop()


async def test_task_killing_precedes_task_killed_only_when_asked(cluster: Cluster) -> None:
    for info, expect_killing in ((_killing_framework(), True), (framework_info(), False)):
        async with SchedulerClient(cluster.master, info) as client:
            framework = TestFramework(client, acknowledge_all=True)
            await framework.start()
            (offer,) = await framework.offers()
            # TERM is ignored: the kill policy's grace (0.3 s) ends in SIGKILL.
            task = command_task(offer, "trap '' TERM; sleep 300")
            task.kill_policy.grace_period.nanoseconds = 300_000_000
            await client.accept([offer.id.value], [task], refuse_seconds=0)
            await framework.update(task.task_id.value, mesos_pb2.TASK_STARTING)
            await framework.update(task.task_id.value, mesos_pb2.TASK_RUNNING)
            kill = Call(type=Call.KILL)
            kill.kill.task_id.CopyFrom(task.task_id)
            await client.call(kill)
            states: list[int] = []
            while not states or states[-1] != mesos_pb2.TASK_KILLED:
                states.append((await framework.update(task.task_id.value)).state)
            assert states == ([mesos_pb2.TASK_KILLING] if expect_killing else []) + \
                [mesos_pb2.TASK_KILLED]
            await client.call(Call(type=Call.TEARDOWN))
        await framework.stop()
