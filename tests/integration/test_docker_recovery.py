"""Docker tasks of checkpointing frameworks survive ``kill -9`` of the agent: the restarted agent
adopts the docker executor (pid + start time), keeps its container, and removes ``mesos-``
containers its checkpoints do not account for.

Updates come in order, each only once the one before is acknowledged, and a STARTING or RUNNING
whose acknowledgement the crash swallowed comes again after the restart: ``terminal()``
acknowledges every update on its way to the terminal one."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import signal
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import docker
import psutil
import pytest
from docker import errors as sdk_errors

from agent_runtime.containerizer.launcher import is_same_process
from agent_runtime.proto import mesos_pb2, scheduler_pb2
from agent_runtime.scheduler.client import SchedulerClient
from tests.harness.cluster import Cluster, get_json, running_cluster
from tests.harness.docker_tasks import (
    agent_flags,
    containers_of,
    docker_task,
    launch,
    terminal,
    wait_gone,
)
from tests.harness.framework import TestFramework, framework_info, subscribed

pytestmark = pytest.mark.docker
Call = scheduler_pb2.Call
Status = mesos_pb2.TaskStatus


@pytest.fixture
def docker_cluster(tmp_path: Any, docker_images: str) -> Iterator[Cluster]:
    with running_cluster(str(tmp_path), agent_flags=agent_flags(docker_images)) as cluster:
        yield cluster


@pytest.fixture
async def framework(docker_cluster: Cluster) -> AsyncIterator[TestFramework]:
    info = framework_info("docker-recovery", checkpoint=True)
    async with subscribed(docker_cluster.master, info) as fw:
        yield fw


async def _running(framework: TestFramework, command: str) -> str:
    """Launch a docker task and acknowledge its STARTING and RUNNING."""
    offer = (await framework.offers())[0]
    task = docker_task(offer, command)
    # busybox `sleep` is the container's pid 1 and ignores `docker stop`'s SIGTERM.
    task.kill_policy.grace_period.nanoseconds = 500_000_000
    task_id = await launch(framework, task, offer)
    await framework.update(task_id, mesos_pb2.TASK_STARTING)
    await framework.update(task_id, mesos_pb2.TASK_RUNNING)
    return task_id


def _agent_executor(cluster: Cluster, task_id: str) -> dict[str, Any]:
    """The executor as the agent reports it, once the agent answers and knows it."""
    deadline = time.monotonic() + 60  # a restart on a loaded machine; returns once it knows
    while True:
        with contextlib.suppress(OSError):
            state = get_json(f"http://127.0.0.1:{cluster.agent_ports[0]}/state")
            for fw in state["frameworks"]:
                for executor in fw["executors"]:
                    if executor["id"] == task_id:
                        return dict(executor)
        assert time.monotonic() < deadline, "the restarted agent does not know the executor"
        time.sleep(0.1)


def _checkpointed_process(cluster: Cluster, executor: dict[str, Any]) -> psutil.Process:
    """The process whose pid and start time the agent checkpointed for the executor's run."""
    (path,) = glob.glob(os.path.join(
        cluster.work_dir, "agent0", "meta", "slaves", "*", "frameworks", "*", "executors",
        executor["id"], "runs", executor["container"], "pids", "forked.pid"))
    with open(path) as handle:
        pid, start_time = handle.read().split()
    assert is_same_process(int(pid), float(start_time))
    return psutil.Process(int(pid))


def _exists(engine: docker.APIClient, name: str) -> bool:
    try:
        engine.inspect_container(name)
    except sdk_errors.NotFound:
        return False
    return True


async def test_docker_task_survives_agent_sigkill_and_stray_container_is_removed(
        framework: TestFramework, docker_cluster: Cluster, engine: docker.APIClient) -> None:
    task_id = await _running(framework, "sleep 300")
    (container,) = containers_of(engine, task_id)
    started_at = engine.inspect_container(container["Id"])["State"]["StartedAt"]
    # The process the agent checkpointed is the docker executor that has the task (a
    # pre-started one moves into the sandbox when it is handed the task).
    executor = await asyncio.to_thread(_agent_executor, docker_cluster, task_id)
    process = _checkpointed_process(docker_cluster, executor)
    assert "docker_executor" in " ".join(process.cmdline())
    assert process.cwd() == executor["directory"]

    docker_cluster.kill("agent0", signal.SIGKILL)
    # Left behind, say, by an agent that died while removing them: named as ours (the name is
    # what makes a container ours; labels or not), known to no checkpoint.
    stray_id = str(uuid.uuid4())
    labels = {**container["Labels"], "mesos.container_id": stray_id, "mesos.task_id": "stray",
              "mesos.executor_id": "stray"}
    strays = {f"mesos-{stray_id}": labels, f"mesos-{uuid.uuid4()}": {}}
    for name, stray_labels in strays.items():
        engine.start(engine.create_container("busybox", ["sleep", "300"], name=name,
                                             labels=stray_labels))
    try:
        docker_cluster.start_agent(0)
        executor = await asyncio.to_thread(_agent_executor, docker_cluster, task_id)
        # Orphans are removed before the agent serves: /state answering means it is done.
        assert [name for name in strays if _exists(engine, name)] == []
    finally:
        for name in strays:
            with contextlib.suppress(sdk_errors.NotFound):
                engine.remove_container(name, force=True)
    assert [t["state"] for t in executor["tasks"]] == ["TASK_RUNNING"]
    assert f"mesos-{executor['container']}" == container["Names"][0].lstrip("/")
    assert _checkpointed_process(docker_cluster, executor).pid == process.pid

    # The same container, never restarted.
    (after,) = containers_of(engine, task_id)
    assert after["Id"] == container["Id"]
    inspected = engine.inspect_container(after["Id"])
    assert inspected["State"]["Running"]
    assert inspected["State"]["StartedAt"] == started_at

    await framework.client.call(Call(type=Call.RECONCILE))
    reconciled = await framework.take(
        lambda e: e.type == scheduler_pb2.Event.UPDATE
        and e.update.status.task_id.value == task_id
        and e.update.status.reason == Status.REASON_RECONCILIATION, timeout=20)
    assert reconciled.update.status.state == mesos_pb2.TASK_RUNNING

    await framework.client.kill(task_id)
    killed = await terminal(framework, task_id)
    assert killed.state == mesos_pb2.TASK_KILLED
    assert killed.source == Status.SOURCE_EXECUTOR
    await asyncio.to_thread(wait_gone, engine, task_id)


async def test_docker_task_that_exits_while_the_agent_is_down_finishes(
        framework: TestFramework, docker_cluster: Cluster, engine: docker.APIClient) -> None:
    # It exits once the test makes a file in its sandbox, so the exit falls while the agent is
    # down however slow a loaded machine is (a fixed sleep could end before the kill).
    task_id = await _running(framework, "until [ -e $MESOS_SANDBOX/exit ]; do sleep 0.1; done")
    (container,) = containers_of(engine, task_id)
    executor = await asyncio.to_thread(_agent_executor, docker_cluster, task_id)
    docker_cluster.kill("agent0", signal.SIGKILL)
    with open(os.path.join(executor["directory"], "exit"), "w"):
        pass
    exited = await asyncio.to_thread(engine.wait, container["Id"], 60)
    assert exited["StatusCode"] == 0
    docker_cluster.start_agent(0)

    finished = await terminal(framework, task_id)
    assert finished.state == mesos_pb2.TASK_FINISHED
    assert finished.source == Status.SOURCE_EXECUTOR
    assert finished.message == "Container exited with status 0"
    await asyncio.to_thread(wait_gone, engine, task_id)


async def test_docker_launch_cut_short_by_the_agent_dying_fails_after_the_restart(
        tmp_path: Any, docker_images: str, engine: docker.APIClient) -> None:
    # A registry that accepts connections and never answers: the image pull, and so the
    # launch, hangs while the executor already has its task.
    with socket.socket() as registry:
        registry.bind(("127.0.0.1", 0))
        registry.listen(8)
        host = f"127.0.0.1:{registry.getsockname()[1]}"
        flags = [f for f in agent_flags(docker_images) if not f.startswith("--docker_registry=")]
        cluster = Cluster(str(tmp_path), agent_flags=[*flags, f"--docker_registry=http://{host}"])
        try:
            cluster.start()
            info = framework_info("docker-recovery", checkpoint=True)
            async with SchedulerClient(cluster.master, info) as client:
                framework = TestFramework(client)
                await framework.start()
                offer = (await framework.offers())[0]
                image = f"never-pulled-{uuid.uuid4().hex[:8]}:v1"
                task_id = await launch(framework, docker_task(offer, "true", image=image), offer)
                await framework.update(task_id, mesos_pb2.TASK_STARTING)
                cluster.kill("agent0", signal.SIGKILL)
                cluster.start_agent(0)
                failed = await terminal(framework, task_id)
                await framework.stop()
        finally:
            cluster.stop()
    assert failed.state == mesos_pb2.TASK_FAILED
    assert failed.source == Status.SOURCE_EXECUTOR
    assert failed.reason == Status.REASON_CONTAINER_LAUNCH_FAILED
    assert "was not started: the agent restarted while launching it" in failed.message
    assert containers_of(engine, task_id) == []
