"""Across hosts: a master and three agents, each in a network namespace with its own address.

What loopback cannot show: agents advertise their own address and hostname, executors reach
their agent at that address, a task's port is reachable from another host, and a partitioned
agent goes unreachable and comes back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from agent_runtime.netns.cluster import AGENT_PORT, NamespaceCluster, get_json
from agent_runtime.proto import mesos_pb2
from agent_runtime.scheduler.client import SchedulerClient
from tests.harness.framework import TestFramework, command_task, framework_info, terminal
from tests.harness.netns import namespace_cluster, offers_from, run_in

Status = mesos_pb2.TaskStatus
# Short enough to go unreachable in seconds, long enough that a stalled agent or master on a
# loaded host (CI) does not miss three pings in a row while the test needs it reachable.
PING = ("--agent_ping_timeout=1secs", "--max_agent_ping_timeouts=3")


@pytest.fixture
def image_hosts(tmp_path: Any, offline_images_dir: str) -> Iterator[NamespaceCluster]:
    flags = ("--containerizers=mesos", "--image_providers=docker",
             "--isolation=filesystem/linux,docker/runtime",
             f"--docker_registry={offline_images_dir}", f"--docker_store_dir={tmp_path}/store",
             "--resources=cpus:2;mem:2048;disk:4096")
    with namespace_cluster(str(tmp_path), agent_flags=flags) as cluster:
        yield cluster


@pytest.fixture
def hosts(tmp_path: Any) -> Iterator[NamespaceCluster]:
    with namespace_cluster(str(tmp_path), master_flags=PING) as cluster:
        yield cluster


async def test_tasks_land_on_every_agent_at_its_own_address(hosts: NamespaceCluster) -> None:
    slaves = {s["hostname"]: s for s in get_json(hosts.url("master1") + "/master/slaves")["slaves"]}
    for name in hosts.agents:
        assert slaves[name]["pid"] == f"slave(1)@{hosts.host(name).ip}:{AGENT_PORT}"

    async with SchedulerClient(hosts.master, framework_info("hosts")) as client:
        framework = TestFramework(client)
        await framework.start()
        offers = await offers_from(framework, 3)
        assert sorted(offers) == hosts.agents
        launched = {}
        for name, offer in offers.items():
            ip = hosts.host(name).ip
            assert offer.url.address.ip == ip
            # The executor reached its agent at the agent's address (never loopback) to get
            # this task, and passes that address on.
            check = (f'test "$MESOS_AGENT_ENDPOINT" = {ip}:{AGENT_PORT} && '
                     f'test "$LIBPROCESS_IP" = {ip}')
            task = command_task(offer, check, task_id=f"on-{name}")
            await client.accept([offer.id.value], [task], refuse_seconds=0)
            launched[name] = task.task_id.value
        for name, task_id in launched.items():
            status = await terminal(framework, task_id)
            assert status.state == mesos_pb2.TASK_FINISHED, (name, status.message)
            assert status.agent_id.value == slaves[name]["id"]
        await framework.stop()


async def test_a_partitioned_agent_goes_unreachable_and_comes_back(
        hosts: NamespaceCluster) -> None:
    aware = framework_info(name="aware")
    aware.capabilities.add(type=mesos_pb2.FrameworkInfo.Capability.PARTITION_AWARE)
    async with SchedulerClient(hosts.master, aware) as client:
        framework = TestFramework(client)
        await framework.start()
        offer = (await offers_from(framework, 3))["agent2"]
        task_id = await framework.running(offer, task_id="partitioned")

        cut = time.monotonic()
        hosts.cut("agent2")
        try:
            status = await framework.update(task_id, mesos_pb2.TASK_UNREACHABLE, timeout=60,
                                            ack=False)
            assert status.source == Status.SOURCE_MASTER
            assert time.monotonic() - cut < 30  # 3 pings of 1 s, not the default 75 s
            state = get_json(hosts.url("master1") + "/master/state")
            assert state["unreachable_slaves"] == 1
        finally:
            hosts.heal("agent2")
        back = await framework.update(task_id, mesos_pb2.TASK_RUNNING, timeout=60, ack=False)
        assert back.reason == Status.REASON_AGENT_REREGISTERED
        hosts.wait_agents(3)
        await client.kill(task_id)
        assert (await terminal(framework, task_id)).state == mesos_pb2.TASK_KILLED
        await framework.stop()


PING_REDIS = """
import socket, sys, time
deadline = time.monotonic() + 20
while True:
    try:
        with socket.create_connection((sys.argv[1], 6379), timeout=2) as sock:
            sock.sendall(b"PING\\r\\n")
            print(sock.recv(64).decode().strip())
            break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.1)
"""


@pytest.mark.cgroups
async def test_redis_on_agent2_answers_agent3_at_agent2s_address(
        image_hosts: NamespaceCluster) -> None:
    async with SchedulerClient(image_hosts.master, framework_info("redis")) as client:
        framework = TestFramework(client)
        await framework.start()
        offer = (await offers_from(framework, 3))["agent2"]
        task = command_task(offer, "", task_id="redis", mem=128)
        task.command.shell = False
        task.command.ClearField("value")  # the image's own Cmd: redis-server on every address
        task.container.type = mesos_pb2.ContainerInfo.MESOS
        task.container.mesos.image.type = mesos_pb2.Image.DOCKER
        task.container.mesos.image.docker.name = "redis"
        await client.accept([offer.id.value], [task], refuse_seconds=0)
        await framework.update("redis", mesos_pb2.TASK_STARTING, timeout=60)
        await framework.update("redis", mesos_pb2.TASK_RUNNING, timeout=60)

        # The task shares agent 2's network: another host reaches it at agent 2's address.
        agent2 = image_hosts.host("agent2").ip
        answer = run_in(image_hosts, "agent3", PING_REDIS.replace("sys.argv[1]", repr(agent2)))
        assert answer.strip() == "+PONG"
        await client.kill("redis")
        assert (await terminal(framework, "redis")).state == mesos_pb2.TASK_KILLED
        await framework.stop()
