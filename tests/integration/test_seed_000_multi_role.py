"""Seed 000: a MULTI_ROLE framework (roles mhc1 and mhc2) gets offers for each of its roles."""

from __future__ import annotations

from agent_runtime.proto import mesos_pb2
from agent_runtime.scheduler.client import SchedulerClient
from tests.harness.cluster import Cluster, get_json
from tests.harness.framework import TestFramework


def _seed_framework() -> mesos_pb2.FrameworkInfo:
    # As the post builds it.
    framework = mesos_pb2.FrameworkInfo()
    framework.user = "root"
    framework.name = "mhc"
    framework.checkpoint = True
    framework.roles.append("mhc1")
    framework.roles.append("mhc2")
    capability = framework.capabilities.add()
    capability.type = 6  # type: ignore[assignment]
    return framework


async def test_multi_role_framework_gets_offers_per_role(cluster2: Cluster) -> None:
    async with SchedulerClient(cluster2.master, _seed_framework()) as client:
        framework = TestFramework(client)
        framework_id = await framework.start()
        offers = await framework.offers()
        while len(offers) < 2:
            offers += await framework.offers()
        roles = {offer.allocation_info.role for offer in offers}
        # Two agents, two roles with equal (zero) shares: DRF gives each role one agent.
        assert roles == {"mhc1", "mhc2"}
        for offer in offers:
            assert {r.allocation_info.role for r in offer.resources} == {
                offer.allocation_info.role}

        (state,) = get_json(cluster2.master_url + "/master/frameworks")["frameworks"]
        assert state["id"] == framework_id
        assert state["name"] == "mhc" and state["user"] == "root"
        assert state["roles"] == ["mhc1", "mhc2"]
        assert state["capabilities"] == ["MULTI_ROLE"]
        assert state["checkpoint"] is True
        assert state["offered_resources"]["cpus"] == 8  # two agents of cpus:4
        assert state["offered_resources"]["ports"] == "[31000-32000]"
        assert state["used_resources"] == {"disk": 0.0, "mem": 0.0, "gpus": 0.0, "cpus": 0.0}
        assert len(state["offers"]) == 2
        for offer in state["offers"]:
            assert set(offer) >= {"id", "framework_id", "slave_id", "resources"}
            assert offer["framework_id"] == framework_id

        roles_json = {r["name"]: r for r in
                      get_json(cluster2.master_url + "/master/roles")["roles"]}
        assert roles_json["mhc1"]["frameworks"] == [framework_id]
        assert roles_json["mhc2"]["frameworks"] == [framework_id]
        assert roles_json["mhc1"]["offered"]["cpus"] == 4
        await framework.stop()


async def test_single_role_framework_cannot_set_roles_without_multi_role(
        cluster: Cluster) -> None:
    info = _seed_framework()
    del info.capabilities[:]
    async with SchedulerClient(cluster.master, info) as client:
        framework = TestFramework(client)
        try:
            await framework.start()
        except Exception as exc:  # the SUBSCRIBE itself is refused
            assert "MULTI_ROLE" in str(exc)
        else:
            raise AssertionError("SUBSCRIBE with roles but without MULTI_ROLE was accepted")
