"""Across hosts on a bad wire: every agent's link loses 10% of its frames and delays the rest
by 50 ms each way (the userspace switch, ``agent_runtime/netns/switch.py``); a run of 200 tasks
still loses nothing."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from agent_runtime.netns.cluster import AGENT_PORT, NamespaceCluster, get_json
from agent_runtime.proto import mesos_pb2
from agent_runtime.scheduler.client import SchedulerClient
from tests.harness.framework import TERMINAL, TestFramework, command_task, framework_info
from tests.harness.netns import namespace_cluster

pytestmark = pytest.mark.slow
TASKS = 200
CPUS, MEM = 0.1, 16.0


@pytest.fixture
def lossy_hosts(tmp_path: Any) -> Iterator[NamespaceCluster]:
    with namespace_cluster(str(tmp_path), wire="switch") as cluster:
        for name in cluster.agents:
            cluster.impair(name, loss=0.10, delay=0.05)
        yield cluster


def _fits(offer: mesos_pb2.Offer) -> int:
    scalars = {r.name: r.scalar.value for r in offer.resources if r.type == mesos_pb2.Value.SCALAR}
    return int(min(scalars.get("cpus", 0) / CPUS, scalars.get("mem", 0) / MEM) + 1e-9)


def _connect_time(ip: str) -> float:
    started = time.monotonic()
    with socket.create_connection((ip, AGENT_PORT), timeout=10):
        return time.monotonic() - started


async def test_200_tasks_over_a_lossy_slow_wire_lose_nothing(
        lossy_hosts: NamespaceCluster) -> None:
    # The wire is as bad as it says: a TCP handshake with an agent takes a round trip of 100 ms.
    assert min(_connect_time(lossy_hosts.host(n).ip) for n in lossy_hosts.agents) >= 0.1
    started = time.monotonic()
    async with SchedulerClient(lossy_hosts.master, framework_info("lossy")) as client:
        framework = TestFramework(client)
        await framework.start()
        launched: list[str] = []
        finished: dict[str, int] = {}
        while len(finished) < TASKS:
            event = await framework.take(
                lambda e: e.type in (e.OFFERS, e.UPDATE), timeout=60)
            if event.type == event.UPDATE:
                status = event.update.status
                await client.acknowledge(status)
                if status.state in TERMINAL:
                    finished[status.task_id.value] = status.state
                continue
            for offer in event.offers.offers:
                count = min(_fits(offer), TASKS - len(launched))
                tasks = [command_task(offer, "true", f"lossy-{len(launched) + i}", CPUS, MEM)
                         for i in range(count)]
                launched += [t.task_id.value for t in tasks]
                await client.accept([offer.id.value], tasks, refuse_seconds=0)
        await framework.stop()
    elapsed = time.monotonic() - started
    assert sorted(finished) == sorted(launched)
    assert set(finished.values()) == {mesos_pb2.TASK_FINISHED}, elapsed
    state = get_json(lossy_hosts.url("master1") + "/master/state")
    assert [s["active"] for s in state["slaves"]] == [True] * 3
    assert state["unreachable_slaves"] == 0
    print(f"{TASKS} tasks over the lossy wire in {elapsed:.1f}s")
