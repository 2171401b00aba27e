"""Maintenance as Mesos does it, on a real master (with a registry on disk) and two agents on
one machine (both are 127.0.0.1 under this host's name): inverse offers to the framework
running there, its answers in GET_MAINTENANCE_STATUS, ``unavailability`` on its offers, the
schedule and a deactivation surviving a master restart (the deactivated agent registers again
and is still not offered), MARK_AGENT_GONE ending tasks TASK_GONE_BY_OPERATOR, shutting the agent
down (its tasks killed, its id forgotten) and refusing the id for good, and DRAIN_AGENT with
``mark_gone``."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from agent_runtime.proto import internal_pb2, internal_pb2_grpc
from tests.harness.cluster import Cluster, get_json, running_cluster
from tests.harness.curl import Running, Subscription, launch_task, post
from tests.harness.processes import with_argv
from tests.harness.wait import wait_for

START_NS = 4_000_000_000 * 10**9  # a window far ahead: nothing goes down by itself
HOUR_NS = 3600 * 10**9


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with tempfile.TemporaryDirectory() as work_dir:
        flags = [f"--work_dir={os.path.join(work_dir, 'master')}"]
        with running_cluster(work_dir, agents=2, master_flags=flags) as cluster:
            yield cluster


def operator(cluster: Cluster, body: dict[str, Any]) -> tuple[int, Any]:
    status, text = post(cluster.master_url + "/api/v1", body)
    return status, (json.loads(text) if text.startswith("{") else text)


def agents(cluster: Cluster) -> dict[str, dict[str, Any]]:
    _, answer = operator(cluster, {"type": "GET_AGENTS"})
    return {a["agent_info"]["id"]["value"]: a for a in answer["get_agents"].get("agents", [])}


def window(cluster: Cluster, start_ns: int) -> dict[str, Any]:
    hostname = next(iter(agents(cluster).values()))["agent_info"]["hostname"]
    return {"windows": [{"machine_ids": [{"hostname": hostname}], "unavailability": {
        "start": {"nanoseconds": start_ns}, "duration": {"nanoseconds": HOUR_NS}}}]}


def schedule(cluster: Cluster, start_ns: int | None) -> None:
    body = {"type": "UPDATE_MAINTENANCE_SCHEDULE", "update_maintenance_schedule": {
        "schedule": window(cluster, start_ns) if start_ns is not None else {}}}
    assert operator(cluster, body)[0] == 200


def now_hostname(cluster: Cluster) -> str:
    return str(next(iter(agents(cluster).values()))["agent_info"]["hostname"]).lower()


def answer_inverse(cluster: Cluster, running: Running, kind: str, offer_id: dict[str, str],
                   refuse_seconds: float) -> None:
    field = kind.lower()
    body = {"framework_id": {"value": running.framework_id}, "type": kind,
            field: {"inverse_offer_ids": [offer_id], "filters": {"refuse_seconds":
                                                                 refuse_seconds}}}
    assert post(cluster.master_url + "/api/v1/scheduler", body,
                running.sub.stream_id) == (202, "")


def inverse_offer(running: Running, timeout: float = 60) -> dict[str, Any]:
    event = running.sub.take(lambda e: e["type"] == "INVERSE_OFFERS", timeout)
    (offer,) = event["inverse_offers"]["inverse_offers"]
    return dict(offer)


def statuses(cluster: Cluster) -> list[dict[str, Any]]:
    _, answer = operator(cluster, {"type": "GET_MAINTENANCE_STATUS"})
    (machine,) = answer["get_maintenance_status"]["status"]["draining_machines"]
    return list(machine.get("statuses", []))


def test_inverse_offers_and_the_frameworks_answers(cluster: Cluster) -> None:
    c = cluster
    agent0 = sorted(agents(c))[0]
    running = launch_task(c, "sleep 60", task_id="held", agent_id=agent0)
    try:
        schedule(c, START_NS)
        offer = inverse_offer(running)
        assert offer["agent_id"]["value"] == agent0
        assert offer["framework_id"]["value"] == running.framework_id
        assert int(offer["unavailability"]["start"]["nanoseconds"]) == START_NS
        # The framework's offers there were rescinded; the new ones carry the window.
        running.sub.take(lambda e: e["type"] == "OFFERS" and all(
            "unavailability" in o for o in e["offers"]["offers"]))
        _, frameworks = operator(c, {"type": "GET_FRAMEWORKS"})
        (entry,) = [f for f in frameworks["get_frameworks"]["frameworks"]
                    if f["framework_info"]["id"]["value"] == running.framework_id]
        assert [o["id"] for o in entry["inverse_offers"]] == [offer["id"]]
        assert statuses(c) == []
        # Declined with a short filter: asked again once it passes; then accepted.
        answer_inverse(c, running, "DECLINE_INVERSE_OFFERS", offer["id"], 0.3)
        (declined,) = statuses(c)
        assert declined["status"] == "DECLINE"
        assert declined["framework_id"]["value"] == running.framework_id
        again = inverse_offer(running)
        assert again["id"] != offer["id"]
        answer_inverse(c, running, "ACCEPT_INVERSE_OFFERS", again["id"], 60)
        assert [s["status"] for s in statuses(c)] == ["ACCEPT"]
        # A late or foreign answer changes nothing; a call without its payload is refused.
        answer_inverse(c, running, "DECLINE_INVERSE_OFFERS", again["id"], 0)
        answer_inverse(c, running, "DECLINE_INVERSE_OFFERS", {"value": "not-an-offer"}, 0)
        assert [s["status"] for s in statuses(c)] == ["ACCEPT"]
        status, text = post(c.master_url + "/api/v1/scheduler", {
            "framework_id": {"value": running.framework_id},
            "type": "ACCEPT_INVERSE_OFFERS"}, running.sub.stream_id)
        assert status == 400 and "accept_inverse_offers" in text
        # A new window: answers and filters are forgotten, the framework is asked again; the
        # window removed: that inverse offer is withdrawn.
        schedule(c, START_NS + HOUR_NS)
        third = inverse_offer(running)
        assert int(third["unavailability"]["start"]["nanoseconds"]) == START_NS + HOUR_NS
        assert statuses(c) == []
        schedule(c, None)
        rescind = running.sub.take(lambda e: e["type"] == "RESCIND_INVERSE_OFFER")
        assert rescind["rescind_inverse_offer"]["inverse_offer_id"] == third["id"]
    finally:
        running.close()


def test_schedule_and_deactivation_survive_a_master_restart(cluster: Cluster) -> None:
    c = cluster
    agent0, agent1 = sorted(agents(c))
    schedule(c, START_NS)
    assert operator(c, {"type": "DEACTIVATE_AGENT", "deactivate_agent": {
        "agent_id": {"value": agent1}}})[0] == 200
    c.kill("master")
    c.start_master()
    wait_for(lambda: len(agents(c)) == 2, 60, "both agents to register with the new master")
    _, answer = operator(c, {"type": "GET_MAINTENANCE_SCHEDULE"})
    (kept,) = answer["get_maintenance_schedule"]["schedule"]["windows"]
    assert int(kept["unavailability"]["start"]["nanoseconds"]) == START_NS
    assert kept["machine_ids"] == [{"hostname": now_hostname(c)}]
    now = agents(c)
    assert now[agent1]["deactivated"] and not now[agent1]["active"]
    assert now[agent0]["active"]
    # Registered again, the deactivated agent is still not offered; reactivated, it is.
    api = c.master_url + "/api/v1/scheduler"
    sub = Subscription(api, {"type": "SUBSCRIBE", "subscribe": {
        "framework_info": {"user": "root", "name": "after-restart"}}})
    try:
        first = sub.take_offers()
        assert {o["agent_id"]["value"] for o in first} == {agent0}
        assert all(int(o["unavailability"]["start"]["nanoseconds"]) == START_NS for o in first)
        time.sleep(0.5)  # five allocation runs
        assert not any(o["agent_id"]["value"] == agent1 for e in sub.events
                       if e["type"] == "OFFERS" for o in e["offers"]["offers"])
        assert operator(c, {"type": "REACTIVATE_AGENT", "reactivate_agent": {
            "agent_id": {"value": agent1}}})[0] == 200
        sub.take(lambda e: e["type"] == "OFFERS" and any(
            o["agent_id"]["value"] == agent1 for o in e["offers"]["offers"]))
    finally:
        sub.close()
    schedule(c, None)


async def _register_as(cluster: Cluster, agent_id: str) -> internal_pb2.MasterMessage:
    """What the master answers on its agent link to a registration under ``agent_id``."""
    port = get_json(cluster.master_url + "/master/agent_link")["port"]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = internal_pb2_grpc.AgentLinkStub(channel).Connect()
        register = internal_pb2.AgentMessage()
        register.register.agent_info.id.value = agent_id
        register.register.agent_info.hostname = "returning"
        await call.write(register)
        first = await asyncio.wait_for(call.read(), 60)
        assert isinstance(first, internal_pb2.MasterMessage)
        return first


def test_mark_gone_and_drain_with_mark_gone(cluster: Cluster) -> None:
    """Last in the module: it takes both agents away."""
    c = cluster
    feed = Subscription(c.master_url + "/api/v1", {"type": "SUBSCRIBE"})
    agent0, agent1 = sorted(agents(c))
    gone_pid = agents(c)[agent1]["pid"]
    aware = {"capabilities": [{"type": "PARTITION_AWARE"}]}
    seconds = f"{600 + os.getpid() % 1000}.5"  # this test's own sleep, found by its argv
    running = launch_task(c, f"exec sleep {seconds}", task_id="doomed", name="aware",
                          framework_info=aware, agent_id=agent1)
    try:
        assert operator(c, {"type": "MARK_AGENT_GONE", "mark_agent_gone": {
            "agent_id": {"value": agent1}}})[0] == 200
        gone = running.sub.take_update("doomed", "TASK_GONE_BY_OPERATOR")
        assert gone["reason"] == "REASON_AGENT_REMOVED_BY_OPERATOR"
        assert gone["source"] == "SOURCE_MASTER"
        removed = feed.take(lambda e: e["type"] == "AGENT_REMOVED"
                            and e["agent_removed"]["agent_id"]["value"] == agent1)
        assert removed
    finally:
        running.close()
        feed.close()
    # Its link ends; it tries to register again with its id and is refused for good. (The
    # harness names agents by start order, the master numbers them as they register: the
    # agent's own log is found by its port.)
    port = int(gone_pid.rpartition(":")[2])
    log_name = f"agent{c.agent_ports.index(port)}"
    wait_for(lambda: "marked gone" in c.log(log_name), 60, "the gone agent to be refused")
    assert agent1 not in agents(c)
    # Told to shut down (Mesos's ShutdownMessage): its task does not run on unseen, it forgets
    # its id (a restart registers anew) and exits.
    assert "master asked this agent to shut down" in c.log(log_name)
    wait_for(lambda: not with_argv("sleep", seconds), 60, "the gone agent's task to be killed")
    assert c.processes[log_name].wait(60) == 0
    assert not os.path.exists(os.path.join(c.work_dir, log_name, "meta", "slaves", "latest"))
    # Its id coming back on the link (an agent that was away when it was marked) is told the
    # same, not merely refused.
    answer = asyncio.run(_register_as(c, agent1))
    assert answer.HasField("shutdown") and "marked gone" in answer.shutdown.message
    status, text = operator(c, {"type": "MARK_AGENT_GONE", "mark_agent_gone": {
        "agent_id": {"value": agent1}}})
    assert status == 400 and "No agent found" in text
    # Drained with mark_gone: an agent with nothing left to kill is gone at once.
    assert operator(c, {"type": "DRAIN_AGENT", "drain_agent": {
        "agent_id": {"value": agent0}, "mark_gone": True}})[0] == 200
    wait_for(lambda: not agents(c), 60, "the drained agent to be marked gone")
    with open(os.path.join(c.work_dir, "master", "registry.json")) as handle:
        registry = json.load(handle)
    assert set(registry["gone"]) == {agent0, agent1}
    assert agent0 not in registry["agents"] and agent1 not in registry["agents"]
