"""Frameworks reserving through offer operations; role names; weights from the command line."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from agent_runtime.proto import mesos_pb2, scheduler_pb2
from agent_runtime.resources import Resources, parse
from agent_runtime.scheduler.client import SchedulerClient, SchedulerError
from tests.harness.cluster import Cluster, get_json, running_cluster
from tests.harness.framework import TestFramework, command_task, framework_info

Call = scheduler_pb2.Call
Operation = mesos_pb2.Offer.Operation


def _reserved_for(role: str, text: str, principal: str) -> list[mesos_pb2.Resource]:
    out = []
    for resource in parse(text).to_proto():
        resource.ClearField("role")
        resource.reservations.add(type=mesos_pb2.Resource.ReservationInfo.DYNAMIC, role=role,
                                  principal=principal)
        resource.allocation_info.role = role
        out.append(resource)
    return out


async def test_framework_reserves_then_launches_on_the_reservation(cluster: Cluster) -> None:
    info = framework_info(role="web", principal="web-team")
    async with SchedulerClient(cluster.master, info) as client:
        framework = TestFramework(client)
        await framework.start()
        (offer,) = await framework.offers()
        reserved = _reserved_for("web", "cpus:1;mem:128", "web-team")
        task = command_task(offer, "sleep 30", "on-reserved")
        del task.resources[:]
        task.resources.extend(reserved)

        call = Call(type=Call.ACCEPT)
        call.accept.offer_ids.add(value=offer.id.value)
        call.accept.filters.refuse_seconds = 0
        operation = call.accept.operations.add(type=Operation.RESERVE)
        operation.reserve.resources.extend(reserved)
        launch = call.accept.operations.add(type=Operation.LAUNCH)
        launch.launch.task_infos.append(task)
        await client.call(call)
        await framework.update("on-reserved", mesos_pb2.TASK_STARTING)
        await framework.update("on-reserved", mesos_pb2.TASK_RUNNING)

        (agent,) = get_json(cluster.master_url + "/master/slaves")["slaves"]
        assert agent["reserved_resources"]["web"]["cpus"] == 1
        (full,) = [r for r in agent["reserved_resources_full"]["web"] if r["name"] == "cpus"]
        assert full["reservations"] == [{"type": "DYNAMIC", "role": "web",
                                         "principal": "web-team"}]

        # Killed: its reserved resources come back, still reserved, in the next offer.
        await client.kill("on-reserved")
        await framework.update("on-reserved", mesos_pb2.TASK_KILLED)
        offered = Resources()
        while not offered.reserved("web"):
            for next_offer in await framework.offers():
                offered = offered + Resources.from_proto(next_offer.resources)
                last = next_offer

        # UNRESERVE gives them back to everyone.
        call = Call(type=Call.ACCEPT)
        call.accept.offer_ids.add(value=last.id.value)
        call.accept.filters.refuse_seconds = 0
        operation = call.accept.operations.add(type=Operation.UNRESERVE)
        operation.unreserve.resources.extend(reserved)
        await client.call(call)
        await framework.offers()
        (agent,) = get_json(cluster.master_url + "/master/slaves")["slaves"]
        assert "web" not in agent["reserved_resources"]
        await framework.stop()


@pytest.fixture(scope="module")
def refusing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One cluster for the refusals: a refused SUBSCRIBE leaves nothing behind (checked)."""
    with running_cluster(str(tmp_path_factory.mktemp("refusing"))) as running:
        yield running


@pytest.mark.parametrize("role", [".", "..", "-lead", "/top", "top/", "a//b", "a b", "a\tb",
                                  "a/./b", "a/*/b"])
async def test_invalid_role_names_are_refused(refusing: Cluster, role: str) -> None:
    cluster = refusing
    async with SchedulerClient(cluster.master, framework_info(role=role)) as client:
        framework = TestFramework(client)
        with pytest.raises(SchedulerError) as refused:
            await framework.start()
        assert "400" in str(refused.value)
    assert get_json(cluster.master_url + "/master/frameworks")["frameworks"] == []


async def test_hierarchical_role_gets_parents_reservation(cluster: Cluster) -> None:
    # Reserve for `eng` through the operator API, then offer to a framework in `eng/frontend`.
    (agent,) = get_json(cluster.master_url + "/master/slaves")["slaves"]
    body = {"type": "RESERVE_RESOURCES", "reserve_resources": {
        "agent_id": {"value": agent["id"]},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 2},
                       "reservations": [{"type": "DYNAMIC", "role": "eng"}]}]}}
    response = requests.post(cluster.master_url + "/api/v1", json=body, timeout=5)
    assert response.status_code == 202, response.text
    async with SchedulerClient(cluster.master, framework_info(role="eng/frontend")) as client:
        framework = TestFramework(client)
        await framework.start()
        (offer,) = await framework.offers()
        reserved = Resources.from_proto(offer.resources).reserved("eng")
        assert reserved.scalar("cpus") == 2
        assert offer.allocation_info.role == "eng/frontend"
        await framework.stop()


async def test_roles_whitelist_and_weights_flag(tmp_path: str) -> None:
    with running_cluster(str(tmp_path), master_flags=["--roles=a,b", "--weights=a=2,b=0.5"]) \
            as cluster:
        async with SchedulerClient(cluster.master, framework_info(role="c")) as client:
            with pytest.raises(SchedulerError) as refused:
                await TestFramework(client).start()
            assert "--roles" in str(refused.value)
        async with SchedulerClient(cluster.master, framework_info(role="a")) as client:
            framework = TestFramework(client)
            await framework.start()
            (offer,) = await framework.offers()
            assert offer.allocation_info.role == "a"
            await framework.stop()
        roles = {r["name"]: r for r in get_json(cluster.master_url + "/master/roles")["roles"]}
        assert roles["a"]["weight"] == 2 and roles["b"]["weight"] == 0.5


async def test_quota_limit_caps_offers_even_at_zero(cluster: Cluster) -> None:
    update = {"type": "UPDATE_QUOTA", "update_quota": {"quota_configs": [
        {"role": "capped", "limits": {"cpus": {"value": 1}, "mem": {"value": 0}}}]}}
    response = requests.post(cluster.master_url + "/api/v1", json=update, timeout=5)
    assert response.status_code == 200, response.text
    async with SchedulerClient(cluster.master, framework_info(role="capped")) as client:
        framework = TestFramework(client)
        await framework.start()
        (offer,) = await framework.offers()
        offered = Resources.from_proto(offer.resources)
        assert offered.scalar("cpus") == 1  # of the agent's 4
        assert offered.scalar("mem") == 0  # a limit of 0 keeps the role away from mem
        await framework.stop()
    status = requests.post(cluster.master_url + "/api/v1", json={"type": "GET_QUOTA"},
                           timeout=5).json()
    (config,) = status["get_quota"]["status"]["configs"]
    assert config["limits"] == {"cpus": {"value": 1.0}, "mem": {"value": 0.0}}
