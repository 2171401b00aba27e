"""Across hosts: three masters in three namespaces contending in ZooKeeper (a namespace of its
own), three agents. Cutting the leader's link elects another; agents and a scheduler follow it
and no task is lost."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from agent_runtime.netns.cluster import MASTER_PORT, NamespaceCluster, get_json
from agent_runtime.proto import mesos_pb2, scheduler_pb2
from agent_runtime.scheduler.client import SchedulerClient
from tests.harness.framework import TestFramework, framework_info
from tests.harness.netns import namespace_cluster, offers_from

pytestmark = [pytest.mark.zookeeper, pytest.mark.slow]
Call = scheduler_pb2.Call


@pytest.fixture
def ha_hosts(tmp_path: Any) -> Iterator[NamespaceCluster]:
    # Agents give up on a master they have not heard from in all its pings (8 s here): long
    # enough that a stall on a loaded host (CI) does not make any of them unreachable before the
    # cut, short enough to follow the new leader well within wait_agents' deadline.
    ping = ("--agent_ping_timeout=2secs", "--max_agent_ping_timeouts=4")
    with namespace_cluster(str(tmp_path), masters=3, master_flags=ping) as cluster:
        yield cluster


def _redirect(url: str) -> tuple[int, str]:
    request = urllib.request.Request(url + "/master/state")
    opener = urllib.request.build_opener(type("Keep", (urllib.request.HTTPRedirectHandler,), {
        "redirect_request": lambda *args, **kwargs: None}))
    try:
        opener.open(request, timeout=5)
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Location", "")
    raise AssertionError("a standby answered /master/state itself")


async def test_leader_cut_off_another_leads_and_everyone_follows(
        ha_hosts: NamespaceCluster) -> None:
    leader = ha_hosts.leader()
    leader_ip = ha_hosts.host(leader).ip
    for standby in (m for m in ha_hosts.masters if m != leader):
        assert _redirect(ha_hosts.url(standby)) == (
            307, f"//{leader_ip}:{MASTER_PORT}/master/state")

    info = framework_info("follower", failover_timeout=300)
    async with SchedulerClient(f"{leader_ip}:{MASTER_PORT}", info) as client:
        framework = TestFramework(client)
        framework_id = await framework.start()
        offers = await offers_from(framework, 3)
        tasks = {name: await framework.running(offer, task_id=f"on-{name}")
                 for name, offer in offers.items()}
        await framework.stop()

    ha_hosts.cut(leader)
    try:
        new = ha_hosts.leader(timeout=30, besides=leader)
        assert new != leader
        ha_hosts.wait_agents(3, timeout=60, besides=leader)

        # The scheduler follows: it subscribes again, as the same framework, to the new leader,
        # and every task it had is still running there.
        info.id.value = framework_id
        async with SchedulerClient(f"{ha_hosts.host(new).ip}:{MASTER_PORT}", info) as client:
            framework = TestFramework(client)
            assert await framework.start() == framework_id
            await client.call(Call(type=Call.RECONCILE))
            for task_id in tasks.values():
                status = await framework.update(task_id, ack=False, timeout=30)
                assert status.state == mesos_pb2.TASK_RUNNING, task_id
            await framework.stop()
        state = get_json(ha_hosts.url(new) + "/master/state")
        (mine,) = [f for f in state["frameworks"] if f["id"] == framework_id]
        assert sorted(t["id"] for t in mine["tasks"]) == sorted(tasks.values())
        assert {t["state"] for t in mine["tasks"]} == {"TASK_RUNNING"}
    finally:
        ha_hosts.heal(leader)
