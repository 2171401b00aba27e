"""Two agents on one Docker engine: a restarting agent removes its own orphans, never the other
agent's containers (each container carries its agent's id as a label)."""

from __future__ import annotations

import contextlib
import signal
import uuid
from collections.abc import Iterator
from typing import Any

import docker
import pytest
from docker import errors as sdk_errors

from agent_runtime.proto import mesos_pb2
from agent_runtime.scheduler.client import SchedulerClient
from tests.harness.cluster import Cluster, agent_state
from tests.harness.docker_tasks import agent_flags, containers_of, docker_task, launch, terminal
from tests.harness.framework import TestFramework, framework_info
from tests.harness.wait import wait_for

pytestmark = pytest.mark.docker


@pytest.fixture
def two_agents(tmp_path: Any, docker_images: str) -> Iterator[Cluster]:
    cluster = Cluster(str(tmp_path), agents=2, agent_flags=agent_flags(docker_images))
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def _exists(engine: docker.APIClient, name: str) -> bool:
    try:
        engine.inspect_container(name)
    except sdk_errors.NotFound:
        return False
    return True


async def test_a_restarted_agent_leaves_the_other_agents_containers_alone(
        two_agents: Cluster, engine: docker.APIClient) -> None:
    first, second = (agent_state(two_agents, index)["id"] for index in range(2))
    async with SchedulerClient(two_agents.master, framework_info("shared-engine")) as client:
        framework = TestFramework(client)
        await framework.start()
        offers = await framework.offers()
        offer = next(o for o in offers if o.agent_id.value == first)
        task = docker_task(offer, "sleep 300")
        task.kill_policy.grace_period.nanoseconds = 500_000_000  # busybox sleep ignores TERM
        task_id = await launch(framework, task, offer)
        await framework.update(task_id, mesos_pb2.TASK_STARTING)
        await framework.update(task_id, mesos_pb2.TASK_RUNNING)
        (container,) = containers_of(engine, task_id)
        assert container["Labels"]["mesos.agent_id"] == first

        # An orphan of the second agent: labelled with its id, known to none of its checkpoints.
        stray = f"mesos-{uuid.uuid4()}"
        engine.create_container("busybox", ["sleep", "300"], name=stray,
                                labels={"mesos.agent_id": second})
        try:
            two_agents.kill("agent1", signal.SIGTERM)
            two_agents.start_agent(1)
            # Orphans are removed before the agent serves: /state answering means it is done.
            wait_for(lambda: agent_state(two_agents, 1)["id"] == second, what="agent 2 back")
            assert not _exists(engine, stray)
            assert engine.inspect_container(container["Id"])["State"]["Running"]
        finally:
            with contextlib.suppress(sdk_errors.NotFound):
                engine.remove_container(stray, force=True)

        await client.kill(task_id)
        assert (await terminal(framework, task_id)).state == mesos_pb2.TASK_KILLED
        await framework.stop()
