"""``mesos task exec`` into a running Docker task, over the wire as Mesos's CLI drives it: the
session is a ``docker exec`` in the task's container (its hostname, its filesystem)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import docker
import pytest

from agent_runtime.proto import mesos_pb2
from tests.harness.cluster import Cluster, running_cluster
from tests.harness.docker_tasks import agent_flags, docker_task, launch
from tests.harness.framework import TestFramework, framework_info, subscribed
from tests.harness.task_exec import TaskExec

pytestmark = pytest.mark.docker


@pytest.fixture
def docker_cluster(tmp_path: Any, docker_images: str) -> Iterator[Cluster]:
    with running_cluster(str(tmp_path), agent_flags=agent_flags(docker_images)) as cluster:
        yield cluster


@pytest.fixture
async def framework(docker_cluster: Cluster) -> AsyncIterator[TestFramework]:
    async with subscribed(docker_cluster.master, framework_info("exec-test")) as fw:
        yield fw


async def test_task_exec_into_a_docker_task(framework: TestFramework, docker_cluster: Cluster,
                                            engine: docker.APIClient) -> None:
    offer = (await framework.offers())[0]
    task_id = await launch(framework, docker_task(offer, "sleep 60"), offer)
    while (await framework.update(task_id)).state != mesos_pb2.TASK_RUNNING:
        pass
    session = TaskExec(docker_cluster, task_id, ["echo", "hi"])
    assert await asyncio.to_thread(session.run) == 0
    assert bytes(session.out) == b"hi\n"
    # Inside the container: busybox's filesystem, not the host's.
    inside = TaskExec(docker_cluster, task_id, ["sh", "-c", "ls /bin/busybox && exit 4"])
    assert await asyncio.to_thread(inside.run) == 4
    assert bytes(inside.out) == b"/bin/busybox\n"
    # Input reaches the command, and its end is the command's EOF.
    typed = TaskExec(docker_cluster, task_id, ["cat"], stdin=b"ping\n")
    assert await asyncio.to_thread(typed.run) == 0
    assert bytes(typed.out) == b"ping\n"
