"""Seed 004: the scheduler HTTP API driven by curl with the post's own JSON bodies.

Only the ids a real cluster hands out (offer ids, the agent id, the stream id) are put in place
of the post's; every other field is as the post writes it.
"""

from __future__ import annotations

import copy
import json
import time
from typing import Any

from tests.harness.cluster import Cluster, get_json
from tests.harness.curl import Subscription, post

REGISTER = json.loads("""{ "framework_id": {"value" : "test13"}, "type":"SUBSCRIBE",
 "subscribe":{ "framework_info":{ "user":"root", "name":"test13", "failover_timeout":60,
 "role":"aa", "id":{"value":"test13"}, "principal":"test",
 "capabilities":{"type":"REVOCABLE_RESOURCES"} }, "force":true } }""")

LAUNCH = json.loads("""{ "framework_id":{"value":"test13"}, "type":"ACCEPT", "accept":{
 "offer_ids":[ {"value":"81c111bd-f27d-41a4-b184-64090dec3048-O428"} ], "filters":{},
 "operations":[ { "type":"LAUNCH", "launch":{"task_infos":[{ "name":"task 00012",
 "task_id":{"value": "00012"}, "agent_id":{"value": "5bb4aba0-628b-4309-b36f-767db1ebb7f4-S0"},
 "resources":[ { "name":"mem", "type":"SCALAR", "scalar":{"value":996.0} },
 { "name":"cpus", "type":"SCALAR", "scalar":{"value":1.0} } ],
 "command":{"value": "/bin/sleep 3000s"} } ] } } ] } }""")

ACKNOWLEDGE = json.loads("""{ "framework_id" : {"value" : "test13"}, "type" : "ACKNOWLEDGE",
 "acknowledge" : { "agent_id" : {"value" : "b5e0c23f-237e-4398-816f-ad1a4aa7d3f3-S1"},
 "task_id" : {"value" : "00016"}, "uuid" : "H9KoCldtRTu0T7halLxs9w==" } }""")

DECLINE = json.loads("""{ "framework_id" : {"value" : "test13"}, "type" : "DECLINE",
 "decline" : { "offer_ids" : [ {"value" : "b5e0c23f-237e-4398-816f-ad1a4aa7d3f3-O15"} ] } }""")

MERGE = json.loads("""{ "framework_id":{"value":"test13"}, "type":"ACCEPT", "accept":{
 "offer_ids":[ {"value":"b5e0c23f-237e-4398-816f-ad1a4aa7d3f3-O14"},
 {"value":"b5e0c23f-237e-4398-816f-ad1a4aa7d3f3-O16"} ], "filters":{},
 "operations":[ { "type":"LAUNCH", "launch":{"task_infos":[{ "name":"task 00017",
 "task_id":{"value": "00017"}, "agent_id":{"value": "b5e0c23f-237e-4398-816f-ad1a4aa7d3f3-S1"},
 "resources":[ { "name":"mem", "type":"SCALAR", "scalar":{"value":996.0} },
 { "name":"cpus", "type":"SCALAR", "scalar":{"value":2.0} } ],
 "command":{"value": "/bin/sleep 180s"} } ] } } ] } }""")

KILL = json.loads("""{ "framework_id" : {"value" : "test13"}, "type" : "KILL",
 "kill" : { "task_id" : {"value" : "00020"},
 "agent_id" : {"value" : "b5e0c23f-237e-4398-816f-ad1a4aa7d3f3-S1"} } }""")

TEARDOWN = json.loads("""{ "framework_id" : {"value" : "test13"}, "type" : "TEARDOWN" }""")


def _scalar(offer: dict[str, Any], name: str) -> float:
    return float(sum(r["scalar"]["value"] for r in offer["resources"] if r["name"] == name))


def _acknowledge(api: str, stream_id: str, status: dict[str, Any]) -> None:
    body = copy.deepcopy(ACKNOWLEDGE)
    body["acknowledge"]["agent_id"]["value"] = status["agent_id"]["value"]
    body["acknowledge"]["task_id"]["value"] = status["task_id"]["value"]
    body["acknowledge"]["uuid"] = status["uuid"]
    assert post(api, body, stream_id) == (202, "")


def test_seed_004_walkthrough(cluster: Cluster) -> None:
    api = cluster.master_url + "/master/api/v1/scheduler"
    sub = Subscription(api, REGISTER)
    try:
        assert sub.status == 200
        assert sub.headers["content-type"].startswith("application/json")
        stream_id = sub.stream_id
        subscribed = sub.take(lambda e: e["type"] == "SUBSCRIBED")
        assert subscribed["subscribed"]["framework_id"] == {"value": "test13"}
        assert subscribed["subscribed"]["heartbeat_interval_seconds"] == 15

        # 1. Offers, as the post shows them.
        (offer,) = sub.take_offers()
        agent_id = offer["agent_id"]["value"]
        assert offer["framework_id"] == {"value": "test13"}
        assert offer["id"]["value"].startswith(agent_id.rpartition("-S")[0] + "-O")
        assert {r["name"] for r in offer["resources"]} >= {"cpus", "mem", "disk", "ports"}
        assert offer["url"]["path"] == "/slave(1)"
        assert _scalar(offer, "cpus") == 4 and _scalar(offer, "mem") == 4096

        # 2. ACCEPT with one LAUNCH: 202, then TASK_RUNNING with a uuid from the executor.
        launch = copy.deepcopy(LAUNCH)
        launch["accept"]["offer_ids"][0]["value"] = offer["id"]["value"]
        launch["accept"]["operations"][0]["launch"]["task_infos"][0]["agent_id"]["value"] = (
            agent_id)
        assert post(api, launch, stream_id) == (202, "")
        # Updates of a task come one at a time: TASK_RUNNING follows the ack of TASK_STARTING.
        _acknowledge(api, stream_id, sub.take_update("00012", "TASK_STARTING"))
        running = sub.take_update("00012", "TASK_RUNNING")
        assert running["source"] == "SOURCE_EXECUTOR"
        assert running["executor_id"] == {"value": "00012"}
        assert running["agent_id"] == {"value": agent_id}
        assert len(running["uuid"]) == 24  # base64 of a 16-byte UUID

        # 3. ACKNOWLEDGE with that uuid; the update is not sent again.
        _acknowledge(api, stream_id, running)
        tasks = get_json(cluster.master_url + "/master/tasks")["tasks"]
        assert [(t["id"], t["state"]) for t in tasks] == [("00012", "TASK_RUNNING")]

        # 4. The rest of the agent comes back as an offer, while 00012 holds its share.
        (rest,) = sub.take_offers()
        assert _scalar(rest, "cpus") == 3 and _scalar(rest, "mem") == 4096 - 996

        # 7. KILL 00012: TASK_KILLED from the executor, "terminated with signal Terminated".
        kill = copy.deepcopy(KILL)
        kill["kill"]["task_id"]["value"] = "00012"
        kill["kill"]["agent_id"]["value"] = agent_id
        assert post(api, kill, stream_id) == (202, "")
        killed = sub.take_update("00012", "TASK_KILLED")
        assert killed["message"] == "Command terminated with signal Terminated"
        assert killed["source"] == "SOURCE_EXECUTOR"
        _acknowledge(api, stream_id, killed)

        # 6.1 The freed share comes as its own offer: ACCEPT both offers of the agent at once.
        freed = sub.take_offers()
        offer_ids = [rest["id"]["value"]] + [o["id"]["value"] for o in freed]
        assert len(offer_ids) >= 2
        merge = copy.deepcopy(MERGE)
        merge["accept"]["offer_ids"] = [{"value": i} for i in offer_ids]
        merge["accept"]["operations"][0]["launch"]["task_infos"][0]["agent_id"]["value"] = (
            agent_id)
        assert post(api, merge, stream_id) == (202, "")
        _acknowledge(api, stream_id, sub.take_update("00017", "TASK_STARTING"))
        _acknowledge(api, stream_id, sub.take_update("00017", "TASK_RUNNING"))

        # 5. DECLINE what is left; a declined offer can no longer be used.
        leftover = sub.take_offers()
        decline = copy.deepcopy(DECLINE)
        decline["decline"]["offer_ids"] = [o["id"] for o in leftover]
        assert post(api, decline, stream_id) == (202, "")
        stale = copy.deepcopy(LAUNCH)
        stale["accept"]["offer_ids"] = [leftover[0]["id"]]
        task = stale["accept"]["operations"][0]["launch"]["task_infos"][0]
        task["agent_id"]["value"] = agent_id
        task["task_id"]["value"] = "00018"
        task["resources"] = [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}}]
        assert post(api, stale, stream_id) == (202, "")
        dropped = sub.take(lambda e: e["type"] == "UPDATE"
                           and e["update"]["status"]["task_id"]["value"] == "00018")
        status = dropped["update"]["status"]
        assert status["state"] in ("TASK_DROPPED", "TASK_LOST")
        assert status["reason"] == "REASON_INVALID_OFFERS"

        # /master/frameworks shows the framework with seed 000's fields.
        (framework,) = get_json(cluster.master_url + "/master/frameworks")["frameworks"]
        assert framework["id"] == "test13" and framework["active"] is True
        assert framework["role"] == "aa" and framework["principal"] == "test"
        assert framework["capabilities"] == ["REVOCABLE_RESOURCES"]
        assert framework["failover_timeout"] == 60
        assert [t["id"] for t in framework["tasks"]] == ["00017"]
        assert framework["used_resources"]["cpus"] == 2
        for field in ("used_resources", "offered_resources", "resources", "tasks",
                      "unreachable_tasks", "completed_tasks", "offers", "executors",
                      "registered_time", "unregistered_time", "hostname", "webui_url",
                      "connected", "recovered", "user", "checkpoint", "name"):
            assert field in framework, field

        # 8. TEARDOWN: 202, the stream ends, the task is killed, the framework completes.
        assert post(api, TEARDOWN, stream_id) == (202, "")
        sub.process.wait(10)
        deadline = time.time() + 10
        while time.time() < deadline:
            state = get_json(cluster.master_url + "/master/frameworks")
            if not state["frameworks"] and state["completed_frameworks"]:
                break
            time.sleep(0.1)
        (done,) = state["completed_frameworks"]
        assert done["id"] == "test13" and done["active"] is False
        assert {t["id"]: t["state"] for t in done["completed_tasks"]} == {
            "00012": "TASK_KILLED", "00017": "TASK_KILLED"}
    finally:
        sub.close()
