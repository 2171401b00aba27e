"""Docker tasks on a real master, agent and Docker engine: ContainerInfo.type DOCKER runs as a
container named ``mesos-<container id>``, watched by the docker executor."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import docker
import pytest
from docker import errors as sdk_errors

from agent_runtime.proto import mesos_pb2
from agent_runtime.scheduler.client import SchedulerClient
from tests.harness.cluster import VENV_BIN, Cluster, get_json, running_cluster, sandbox_file
from tests.harness.docker_tasks import (
    agent_flags,
    containers_of,
    docker_task,
    launch,
    terminal,
    wait_gone,
)
from tests.harness.framework import TestFramework, command_task, framework_info, subscribed
from tests.harness.wait import wait_for

pytestmark = pytest.mark.docker
Status = mesos_pb2.TaskStatus
DockerInfo = mesos_pb2.ContainerInfo.DockerInfo


@pytest.fixture
def docker_cluster(tmp_path: Any, docker_images: str) -> Iterator[Cluster]:
    with running_cluster(str(tmp_path), agent_flags=agent_flags(docker_images)) as cluster:
        yield cluster


@pytest.fixture
async def framework(docker_cluster: Cluster) -> AsyncIterator[TestFramework]:
    async with subscribed(docker_cluster.master, framework_info("docker-test")) as fw:
        yield fw


async def terminal_or_running(fw: TestFramework, task_id: str) -> mesos_pb2.TaskStatus:
    while True:
        status = await fw.update(task_id)
        if status.state != mesos_pb2.TASK_STARTING:
            return status


def _sandbox_reads(cluster: Cluster, task_id: str, name: str, expected: str) -> None:
    """Wait for a sandbox file to read ``expected``: the docker executor waits at most
    LOG_DRAIN s for the log stream to end before the terminal update, so on a loaded machine
    the file may still be filling when the update comes."""
    try:
        wait_for(lambda: sandbox_file(cluster, task_id, name) == expected, 60,
                 f"{task_id}'s {name} to read {expected!r}")
    except AssertionError:
        assert sandbox_file(cluster, task_id, name) == expected  # shows what it read
        raise


def _container_id(cluster: Cluster, task_id: str) -> str:
    state = get_json(f"http://127.0.0.1:{cluster.agent_ports[0]}/state")
    for framework in state["frameworks"]:
        for executor in framework["executors"]:
            if executor["id"] == task_id:
                return str(executor["container"])
    raise AssertionError(f"no executor {task_id}")


async def test_exit_zero_finishes_with_logs_in_sandbox(
        framework: TestFramework, docker_cluster: Cluster, engine: docker.APIClient) -> None:
    offer = (await framework.offers())[0]
    task_id = await launch(framework, docker_task(offer, "echo out; echo err >&2"), offer)
    states: list[int] = []
    while not states or states[-1] != mesos_pb2.TASK_FINISHED:
        status = await framework.update(task_id)
        states.append(status.state)
    assert states == [mesos_pb2.TASK_STARTING, mesos_pb2.TASK_RUNNING, mesos_pb2.TASK_FINISHED]
    assert status.message == "Container exited with status 0"
    assert status.source == Status.SOURCE_EXECUTOR
    await asyncio.to_thread(_sandbox_reads, docker_cluster, task_id, "stdout", "out\n")
    await asyncio.to_thread(_sandbox_reads, docker_cluster, task_id, "stderr", "err\n")
    await asyncio.to_thread(wait_gone, engine, task_id)


async def test_nonzero_exit_fails_with_the_code(framework: TestFramework) -> None:
    offer = (await framework.offers())[0]
    task_id = await launch(framework, docker_task(offer, "exit 3"), offer)
    status = await terminal(framework, task_id)
    assert status.state == mesos_pb2.TASK_FAILED
    assert status.message == "Container exited with status 3"


async def test_out_of_memory_gives_the_memory_reason(framework: TestFramework) -> None:
    offer = (await framework.offers())[0]
    # dd's 100 MB buffer cannot fit under the 32 MB limit.
    task = docker_task(offer, "dd if=/dev/zero of=/dev/null bs=100M count=1", mem=32)
    task_id = await launch(framework, task, offer)
    status = await terminal(framework, task_id)
    assert status.state == mesos_pb2.TASK_FAILED
    assert status.reason == Status.REASON_CONTAINER_LIMITATION_MEMORY
    assert "Memory limit exceeded" in status.message


async def test_missing_image_fails_naming_it_and_agent_keeps_serving(
        framework: TestFramework) -> None:
    offer = (await framework.offers())[0]
    image = f"no-such-image-{uuid.uuid4().hex[:8]}:v1"
    task_id = await launch(framework, docker_task(offer, "true", image=image), offer)
    status = await terminal(framework, task_id)
    assert status.state == mesos_pb2.TASK_FAILED
    assert status.reason == Status.REASON_CONTAINER_LAUNCH_FAILED
    assert image in status.message
    offer = (await framework.offers())[0]
    task_id = await launch(framework, docker_task(offer, "true"), offer)
    assert (await terminal(framework, task_id)).state == mesos_pb2.TASK_FINISHED


async def test_kill_stops_the_container_and_removes_it(
        framework: TestFramework, engine: docker.APIClient) -> None:
    offer = (await framework.offers())[0]
    # The shell exits on SIGTERM: the kill is `docker stop`, not a SIGKILL.
    task = docker_task(offer, "trap 'exit 0' TERM; sleep 300 & wait")
    # A grace period far above what a loaded machine takes to stop it: only a container that
    # ignored the SIGTERM comes near it.
    task.kill_policy.grace_period.nanoseconds = 60_000_000_000
    task_id = await launch(framework, task, offer)
    await framework.update(task_id, mesos_pb2.TASK_STARTING)
    await framework.update(task_id, mesos_pb2.TASK_RUNNING)
    assert [c["State"] for c in containers_of(engine, task_id)] == ["running"]
    started = time.monotonic()
    await framework.client.kill(task_id)
    status = await terminal(framework, task_id)
    assert status.state == mesos_pb2.TASK_KILLED
    assert time.monotonic() - started < 30, "the container ignored docker stop's SIGTERM"
    await asyncio.to_thread(wait_gone, engine, task_id)


async def test_container_name_labels_limits_environment_and_volumes(
        framework: TestFramework, docker_cluster: Cluster, engine: docker.APIClient,
        tmp_path: Any) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "hello").write_text("from the host\n")
    offer = (await framework.offers())[0]
    task = docker_task(offer, "cat /data/hello; echo $MESOS_SANDBOX $GREETING; sleep 300",
                       mem=96)
    task.resources[0].scalar.value = 0.5  # cpus
    task.command.environment.variables.add(name="GREETING", value="hi")
    task.container.volumes.add(container_path="/data", host_path=str(shared),
                               mode=mesos_pb2.Volume.RO)
    task_id = await launch(framework, task, offer)
    running = await terminal_or_running(framework, task_id)
    assert running.state == mesos_pb2.TASK_RUNNING
    (container,) = containers_of(engine, task_id)
    inspected = engine.inspect_container(container["Id"])
    assert inspected["Name"] == f"/mesos-{_container_id(docker_cluster, task_id)}"
    labels = inspected["Config"]["Labels"]
    assert labels["mesos.task_id"] == task_id
    assert labels["mesos.executor_id"] == task_id
    assert labels["mesos.framework_id"] == framework.client.framework_id
    assert labels["mesos.agent_id"] == offer.agent_id.value
    host = inspected["HostConfig"]
    assert host["CpuShares"] == 512
    assert host["Memory"] == 96 * 1024 * 1024
    assert host["NetworkMode"] == "host"
    assert any(b.endswith(":/mnt/mesos/sandbox:rw") for b in host["Binds"])
    assert f"{shared}:/data:ro" in host["Binds"]
    await asyncio.to_thread(_sandbox_reads, docker_cluster, task_id, "stdout",
                            "from the host\n/mnt/mesos/sandbox hi\n")
    await framework.client.kill(task_id)
    assert (await terminal(framework, task_id)).state == mesos_pb2.TASK_KILLED


async def test_bridge_port_mapping_outside_the_task_ports_fails(
        framework: TestFramework) -> None:
    offer = (await framework.offers())[0]
    task = docker_task(offer, "true", network=DockerInfo.BRIDGE)
    ports = task.resources.add(name="ports", type=mesos_pb2.Value.RANGES)
    ports.ranges.range.add(begin=31000, end=31000)
    task.container.docker.port_mappings.add(host_port=31001, container_port=80)
    task_id = await launch(framework, task, offer)
    status = await terminal(framework, task_id)
    assert status.state == mesos_pb2.TASK_FAILED
    assert status.message == "Port [31001] not included in resources"


async def test_bridge_network_publishes_the_mapped_port(
        framework: TestFramework, engine: docker.APIClient) -> None:
    offer = (await framework.offers())[0]
    task = docker_task(offer, "echo pong | nc -l -p 8080", network=DockerInfo.BRIDGE)
    ports = task.resources.add(name="ports", type=mesos_pb2.Value.RANGES)
    ports.ranges.range.add(begin=31005, end=31005)
    task.container.docker.port_mappings.add(host_port=31005, container_port=8080)
    task_id = await launch(framework, task, offer)
    assert (await terminal_or_running(framework, task_id)).state == mesos_pb2.TASK_RUNNING
    (container,) = containers_of(engine, task_id)
    host = engine.inspect_container(container["Id"])["HostConfig"]
    assert host["NetworkMode"] == "bridge"
    assert host["PortBindings"] == {"8080/tcp": [{"HostIp": "", "HostPort": "31005"}]}
    await framework.client.kill(task_id)
    assert (await terminal(framework, task_id)).state == mesos_pb2.TASK_KILLED


async def test_routing_by_container_type(framework: TestFramework,
                                         docker_cluster: Cluster) -> None:
    offer = (await framework.offers())[0]
    # No ContainerInfo: the Mesos containerizer, a host process whose sandbox is the host path.
    plain = command_task(offer, 'echo "$MESOS_SANDBOX"')
    docker_one = docker_task(offer, 'echo "$MESOS_SANDBOX"')
    plain.resources[1].scalar.value = docker_one.resources[1].scalar.value = 32
    await framework.client.accept([offer.id.value], [plain, docker_one], refuse_seconds=0)
    assert (await terminal(framework, plain.task_id.value)).state == mesos_pb2.TASK_FINISHED
    assert (await terminal(framework, docker_one.task_id.value)).state == mesos_pb2.TASK_FINISHED
    host_sandbox = sandbox_file(docker_cluster, plain.task_id.value, "stdout").strip()
    assert host_sandbox.startswith(docker_cluster.work_dir)
    await asyncio.to_thread(_sandbox_reads, docker_cluster, docker_one.task_id.value, "stdout",
                            "/mnt/mesos/sandbox\n")


async def test_docker_task_fails_without_the_docker_containerizer(
        tmp_path: Any, docker_images: str) -> None:
    cluster = Cluster(str(tmp_path), agent_flags=agent_flags(docker_images, containerizers="mesos"))
    try:
        cluster.start()
        async with SchedulerClient(cluster.master, framework_info("no-docker")) as client:
            fw = TestFramework(client)
            await fw.start()
            offer = (await fw.offers())[0]
            task_id = await launch(fw, docker_task(offer, "true"), offer)
            status = await terminal(fw, task_id)
            await fw.stop()
    finally:
        cluster.stop()
    assert status.state == mesos_pb2.TASK_FAILED
    assert status.reason == Status.REASON_CONTAINER_LAUNCH_FAILED
    assert "--containerizers=mesos" in status.message and "DOCKER" in status.message


def test_stray_mesos_container_is_removed_at_agent_start(
        tmp_path: Any, docker_images: str, engine: docker.APIClient) -> None:
    suffix = uuid.uuid4().hex
    for name in (f"mesos-{suffix}", f"keep-{suffix}"):
        created = engine.create_container("busybox", ["sleep", "300"], name=name)
        engine.start(created["Id"])
    try:
        cluster = Cluster(str(tmp_path), agent_flags=agent_flags(docker_images))
        try:
            cluster.start()
            names = {c["Names"][0] for c in engine.containers(all=True)}
        finally:
            cluster.stop()
        assert f"/mesos-{suffix}" not in names
        assert f"/keep-{suffix}" in names
    finally:
        for name in (f"mesos-{suffix}", f"keep-{suffix}"):
            with contextlib.suppress(sdk_errors.NotFound):
                engine.remove_container(name, force=True)


async def test_image_loaded_from_the_registry_directory_when_missing(
        framework: TestFramework, docker_images: str, engine: docker.APIClient) -> None:
    version = uuid.uuid4().hex[:8]
    tag = f"mesos-test-load:{version}"
    engine.tag("busybox:latest", "mesos-test-load", version)
    archive = os.path.join(docker_images, f"{tag}.tar")
    try:
        with open(archive, "wb") as handle:
            for chunk in engine.get_image(tag):
                handle.write(chunk)
        engine.remove_image(tag)
        offer = (await framework.offers())[0]
        task_id = await launch(framework, docker_task(offer, "true", image=tag), offer)
        assert (await terminal(framework, task_id)).state == mesos_pb2.TASK_FINISHED
        assert engine.images(name=tag)
    finally:
        os.unlink(archive)
        with contextlib.suppress(sdk_errors.ImageNotFound):
            engine.remove_image(tag)


async def test_monitor_statistics_show_container_usage(
        framework: TestFramework, docker_cluster: Cluster) -> None:
    offer = (await framework.offers())[0]
    task_id = await launch(framework, docker_task(offer, "sleep 300", mem=64), offer)
    assert (await terminal_or_running(framework, task_id)).state == mesos_pb2.TASK_RUNNING
    url = f"http://127.0.0.1:{docker_cluster.agent_ports[0]}/monitor/statistics"
    (entry,) = await asyncio.to_thread(get_json, url)
    assert entry["executor_id"] == task_id
    assert entry["framework_id"] == framework.client.framework_id
    statistics = entry["statistics"]
    assert statistics["mem_limit_bytes"] == 64 * 1024 * 1024
    assert statistics["cpus_limit"] == 0.1
    assert statistics["mem_total_bytes"] > 0
    await framework.client.kill(task_id)
    assert (await terminal(framework, task_id)).state == mesos_pb2.TASK_KILLED


def _execute(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [os.path.join(VENV_BIN, "mesos-execute"), f"--master={cluster.master}", *args],
        capture_output=True, text=True, timeout=120,
    )


def test_mesos_execute_busybox(docker_cluster: Cluster, engine: docker.APIClient) -> None:
    done = _execute(docker_cluster, "--name=hi", "--containerizer=docker",
                    "--docker_image=busybox", "--command=echo hi")
    assert done.returncode == 0, done.stdout + done.stderr
    states = [line.split()[3] for line in done.stdout.splitlines()
              if line.startswith("Received status update")]
    assert states == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
    _sandbox_reads(docker_cluster, "hi", "stdout", "hi\n")
    wait_gone(engine, "hi")


def _redis_ping(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64)


def test_mesos_execute_redis_answers_ping_and_dies_on_kill(
        docker_cluster: Cluster, docker_images: str, engine: docker.APIClient,
        redis_port: int) -> None:
    if not os.path.isfile(os.path.join(docker_images, "redis.tar")):
        pytest.skip("no offline redis image (the images/ builder makes redis.tar)")
    # mesos-execute kills the task this long after it launches it, and redis must answer
    # first: a loaded machine may take many seconds to load the image and start it. The test
    # waits out the kill on every run (the kill is what it checks), so it is no longer.
    kill_after = 20
    execute = subprocess.Popen(
        [os.path.join(VENV_BIN, "mesos-execute"), f"--master={docker_cluster.master}",
         "--name=redis", "--containerizer=docker", "--docker_image=redis", "--shell=false",
         f"--kill_after={kill_after}secs"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: _redis_ping(redis_port) == b"+PONG\r\n", kill_after,
                 "redis to answer PING")
        output, _ = execute.communicate(timeout=kill_after + 60)
    finally:
        if execute.poll() is None:
            execute.kill()
    assert "Received status update TASK_KILLED for task 'redis'" in output, output
    wait_gone(engine, "redis")


async def test_agent_sigkill_then_restart_leaves_no_container(
        framework: TestFramework, docker_cluster: Cluster, engine: docker.APIClient) -> None:
    # This framework does not checkpoint, so the restarted agent cannot adopt the task: the
    # executor stops its container when the agent goes away, and the new agent removes it
    # (test_docker_recovery.py has the checkpointing side).
    offer = (await framework.offers())[0]
    task_id = await launch(framework, docker_task(offer, "sleep 300"), offer)
    assert (await terminal_or_running(framework, task_id)).state == mesos_pb2.TASK_RUNNING
    docker_cluster.kill("agent0", signal.SIGKILL)
    docker_cluster.start_agent(0)
    await asyncio.to_thread(wait_gone, engine, task_id)
