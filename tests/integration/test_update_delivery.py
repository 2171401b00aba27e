"""An update nobody acknowledged survives master restarts and is sent until acknowledged."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from agent_runtime.proto import mesos_pb2
from agent_runtime.scheduler.client import SchedulerClient
from tests.harness.cluster import Cluster, running_cluster
from tests.harness.framework import TestFramework, framework_info

# The agent's first retry of an unacknowledged update (Mesos: 10 s, the flag's default): the
# master forwards an update only to a subscribed framework, so after a master restart the copy
# that reaches the re-subscribed framework is a retry.
RETRY = 1.0


@pytest.fixture
def cluster(tmp_path: Any) -> Iterator[Cluster]:
    flags = [f"--status_update_retry_interval_min={RETRY:g}secs"]
    with running_cluster(str(tmp_path), agent_flags=flags) as running:
        yield running


async def _resubscribe(cluster: Cluster, framework_id: str) -> tuple[SchedulerClient,
                                                                       TestFramework]:
    info = framework_info(failover_timeout=300.0)
    info.id.value = framework_id
    client = SchedulerClient(cluster.master, info)
    await client.__aenter__()
    framework = TestFramework(client)
    await framework.start()
    return client, framework


async def test_unacknowledged_update_is_resent_across_master_restarts(cluster: Cluster) -> None:
    info = framework_info(failover_timeout=300.0)
    async with SchedulerClient(cluster.master, info) as client:
        framework = TestFramework(client)
        framework_id = await framework.start()
        (offer,) = await framework.offers()
        task_id = await framework.launch(offer, "sleep 300")
        first = await framework.update(task_id, mesos_pb2.TASK_STARTING, ack=False)
        await framework.stop()

    for restart in range(2):  # two master restarts, the update still unacknowledged
        cluster.kill("master")
        await asyncio.to_thread(cluster.start_master)
        await asyncio.to_thread(cluster.wait_agents, 1)
        client, framework = await _resubscribe(cluster, framework_id)
        try:
            # The agent sends it again on re-registration, then every RETRY s (doubling).
            again = await framework.update(task_id, mesos_pb2.TASK_STARTING, timeout=60,
                                           ack=restart == 1)
            assert again.uuid == first.uuid
            if restart == 1:
                running = await framework.update(task_id, mesos_pb2.TASK_RUNNING)
                assert running.uuid != first.uuid
        finally:
            await framework.stop()
            await client.__aexit__(None, None, None)
