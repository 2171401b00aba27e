"""No message to an agent is dropped silently (issue 13 item 5): kills sent while the agent's
link is down, or just as it breaks, reach the agent once it is back, on real processes."""

from __future__ import annotations

import asyncio
import signal
import tempfile
from collections.abc import Iterator

import pytest

from agent_runtime.proto import mesos_pb2
from agent_runtime.scheduler.client import SchedulerClient
from tests.harness.cluster import Cluster, get_json, running_cluster
from tests.harness.framework import TestFramework, command_task, framework_info
from tests.harness.wait import until

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with tempfile.TemporaryDirectory() as work_dir, running_cluster(work_dir) as running:
        yield running


async def _disconnected(cluster: Cluster) -> None:
    def inactive() -> bool:
        (agent,) = get_json(cluster.master_url + "/master/slaves")["slaves"]
        return not agent["active"]

    await until(inactive, 60, "the master to see the agent's link drop")


async def test_kills_sent_while_the_agents_link_is_down_still_kill(cluster: Cluster) -> None:
    async with SchedulerClient(cluster.master, framework_info(checkpoint=True)) as client:
        framework = TestFramework(client, acknowledge_all=True)
        await framework.start()
        (offer,) = await framework.offers()
        tasks = [command_task(offer, "sleep 300", f"held-{n}") for n in range(2)]
        await client.accept([offer.id.value], tasks, refuse_seconds=0)
        for task in tasks:
            await framework.update(task.task_id.value, mesos_pb2.TASK_RUNNING)
        agent_id = offer.agent_id.value
        cluster.kill("agent0", signal.SIGKILL)
        # One kill right as the link breaks (the master may not know yet), one once the
        # master has seen it down; the executors (checkpointed) keep both tasks running.
        await client.kill("held-0", agent_id)
        await _disconnected(cluster)
        await client.kill("held-1", agent_id)
        await asyncio.sleep(0.5)
        cluster.start_agent(0)
        for task in tasks:
            status = await framework.update(task.task_id.value, mesos_pb2.TASK_KILLED)
            assert status.state == mesos_pb2.TASK_KILLED
        await client.teardown()
        await framework.stop()
