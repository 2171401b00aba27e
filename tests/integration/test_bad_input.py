"""Bad input gets a 4xx or a TASK_ERROR/TASK_DROPPED naming the problem; daemons keep serving."""

from __future__ import annotations

import copy
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.harness.cluster import Cluster, running_cluster
from tests.harness.curl import Subscription, post

SUBSCRIBE: dict[str, Any] = {
    "type": "SUBSCRIBE",
    "subscribe": {"framework_info": {"user": "root", "name": "bad-input"}},
}


@pytest.fixture(scope="module")
def shared_cluster() -> Iterator[Cluster]:
    with tempfile.TemporaryDirectory() as work_dir, running_cluster(work_dir) as cluster:
        yield cluster


@pytest.fixture
def sub(shared_cluster: Cluster) -> Iterator[Subscription]:
    subscription = Subscription(shared_cluster.master_url + "/api/v1/scheduler", SUBSCRIBE)
    yield subscription
    framework_id = subscription.events[0]["subscribed"]["framework_id"]
    post(shared_cluster.master_url + "/api/v1/scheduler",
         {"type": "TEARDOWN", "framework_id": framework_id}, subscription.stream_id)
    subscription.close()


def _api(cluster: Cluster) -> str:
    return cluster.master_url + "/api/v1/scheduler"


def _still_serving(cluster: Cluster) -> None:
    assert requests.get(cluster.master_url + "/health", timeout=5).status_code == 200
    agent = f"http://127.0.0.1:{cluster.agent_ports[0]}/health"
    assert requests.get(agent, timeout=5).status_code == 200


def _raw(cluster: Cluster, body: bytes, content_type: str = "application/json",
         **headers: str) -> requests.Response:
    return requests.post(_api(cluster), data=body, timeout=5,
                         headers={"Content-Type": content_type, **headers})


@pytest.mark.parametrize(
    ("body", "content_type", "status", "words"),
    [
        (b"{not json", "application/json", 400, "Failed to parse body into JSON"),
        (b"\x0a\xff\xff\xff", "application/x-protobuf", 400, "Failed to parse body"),
        (b'{"type": "NO_SUCH_CALL"}', "application/json", 400, "NO_SUCH_CALL"),
        (b'{"type": "SUBSCRIBE"}', "application/json", 400, "framework_info"),
        (b'{"type": "SUBSCRIBE"}', "text/plain", 415, "Content-Type"),
        (b'[1, 2]', "application/json", 400, "JSON object"),
        (b'{"type": "DECLINE", "framework_id": {"value": "x"}}', "application/json", 400,
         "Mesos-Stream-Id"),
    ],
)
def test_malformed_calls_get_400s(shared_cluster: Cluster, body: bytes, content_type: str,
                                  status: int, words: str) -> None:
    response = _raw(shared_cluster, body, content_type)
    assert response.status_code == status
    assert words in response.text
    _still_serving(shared_cluster)


def test_nan_is_rejected_by_name(shared_cluster: Cluster) -> None:
    body = (b'{"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "u", "name": "n",'
            b' "failover_timeout": NaN}}}')
    response = _raw(shared_cluster, body)
    assert response.status_code == 400
    assert "NaN" in response.text


def test_wrong_method_and_accept(shared_cluster: Cluster) -> None:
    assert requests.get(_api(shared_cluster), timeout=5).status_code == 405
    response = _raw(shared_cluster, b'{"type": "SUBSCRIBE", "subscribe": {"framework_info": '
                    b'{"user": "u", "name": "n"}}}', Accept="text/html")
    assert response.status_code == 406


def test_oversized_body_gets_413(shared_cluster: Cluster) -> None:
    response = _raw(shared_cluster, b"{" + b" " * (9 * 1024 * 1024) + b"}")
    assert response.status_code == 413
    _still_serving(shared_cluster)


def test_wrong_stream_id_and_unknown_framework(shared_cluster: Cluster,
                                               sub: Subscription) -> None:
    framework_id = sub.take(lambda e: e["type"] == "SUBSCRIBED")["subscribed"]["framework_id"]
    revive = {"type": "REVIVE", "framework_id": framework_id}
    code, text = post(_api(shared_cluster), revive, "not-the-stream")
    assert code == 400 and "didn't match" in text
    code, text = post(_api(shared_cluster), {"type": "REVIVE", "framework_id": {"value": "nope"}},
                      sub.stream_id)
    assert code == 400 and "Framework cannot be found" in text
    assert post(_api(shared_cluster), revive, sub.stream_id) == (202, "")


def _launch(sub: Subscription, offer: dict[str, Any], tasks: list[dict[str, Any]],
            offer_ids: list[str] | None = None) -> dict[str, Any]:
    framework_id = sub.events[0]["subscribed"]["framework_id"]
    return {
        "type": "ACCEPT", "framework_id": framework_id,
        "accept": {
            "offer_ids": [{"value": i} for i in (offer_ids or [offer["id"]["value"]])],
            "operations": [{"type": "LAUNCH", "launch": {"task_infos": tasks}}],
        },
    }


def _task(offer: dict[str, Any], task_id: str, cpus: float = 0.1,
          command: str = "sleep 30") -> dict[str, Any]:
    return {
        "name": task_id, "task_id": {"value": task_id}, "agent_id": offer["agent_id"],
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}},
                      {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}],
        "command": {"value": command},
    }


def test_unknown_offer_drops_tasks(shared_cluster: Cluster, sub: Subscription) -> None:
    (offer,) = sub.take_offers()
    call = _launch(sub, offer, [_task(offer, "t-unknown")], ["no-such-offer"])
    assert post(_api(shared_cluster), call, sub.stream_id) == (202, "")
    status = sub.take(lambda e: e["type"] == "UPDATE")["update"]["status"]
    assert status["task_id"]["value"] == "t-unknown"
    assert status["state"] == "TASK_LOST"  # not PARTITION_AWARE: TASK_LOST, as Mesos
    assert status["reason"] == "REASON_INVALID_OFFERS"
    assert "no-such-offer" in status["message"]


@pytest.mark.parametrize(
    ("cpus", "words"),
    [(-1.0, "negative"), (1000.0, "more resources")],
)
def test_bad_task_resources_give_task_error(shared_cluster: Cluster, sub: Subscription,
                                            cpus: float, words: str) -> None:
    (offer,) = sub.take_offers()
    call = _launch(sub, offer, [_task(offer, "t-res", cpus=cpus)])
    assert post(_api(shared_cluster), call, sub.stream_id) == (202, "")
    status = sub.take(lambda e: e["type"] == "UPDATE")["update"]["status"]
    assert status["state"] == "TASK_ERROR"
    assert status["reason"] == "REASON_TASK_INVALID"
    assert words in status["message"].lower()
    _still_serving(shared_cluster)


def test_duplicate_task_id_gives_task_error(shared_cluster: Cluster, sub: Subscription) -> None:
    (offer,) = sub.take_offers()
    call = _launch(sub, offer, [_task(offer, "dup"), _task(offer, "dup")])
    assert post(_api(shared_cluster), call, sub.stream_id) == (202, "")
    error = sub.take(lambda e: e["type"] == "UPDATE"
                     and e["update"]["status"]["state"] == "TASK_ERROR")["update"]["status"]
    assert error["task_id"]["value"] == "dup"
    assert "duplicate" in error["message"].lower()
    # The first one still runs.
    sub.take(lambda e: e["type"] == "UPDATE"
             and e["update"]["status"]["state"] == "TASK_STARTING")


def test_file_paths_stay_in_sandboxes(shared_cluster: Cluster) -> None:
    agent = f"http://127.0.0.1:{shared_cluster.agent_ports[0]}"
    sandboxes = os.path.join(shared_cluster.work_dir, "agent0", "slaves")
    for path, status in [(sandboxes + "/../../../../etc/passwd", 403),
                         ("/etc/passwd", 403),
                         ("relative/path", 400),
                         (sandboxes + "/no-such-file", 404)]:
        response = requests.get(agent + "/files/read", params={"path": path}, timeout=5)
        assert response.status_code == status, (path, response.text)
        assert response.text
    response = requests.get(agent + "/files/browse", params={"path": "/etc"}, timeout=5)
    assert response.status_code == 403
    _still_serving(shared_cluster)


def test_executor_api_rejects_strangers(shared_cluster: Cluster) -> None:
    agent = f"http://127.0.0.1:{shared_cluster.agent_ports[0]}/api/v1/executor"
    body = {"type": "SUBSCRIBE", "framework_id": {"value": "f"}, "executor_id": {"value": "e"},
            "subscribe": {}}
    # Without the token the agent gave its executor, nobody is even told what exists.
    code, text = post(agent, body)
    assert code == 401 and "Bearer" in text
    bad = copy.deepcopy(body)
    bad["type"] = "BOGUS"
    code, text = post(agent, bad)
    assert code == 400 and "BOGUS" in text
    _still_serving(shared_cluster)


def test_an_invalid_group_tells_its_tasks(shared_cluster: Cluster, sub: Subscription) -> None:
    (offer,) = sub.take_offers()
    call = _launch(sub, offer, [])
    group = {"type": "LAUNCH_GROUP", "launch_group": {
        "executor": {"executor_id": {"value": "g"}, "type": "CUSTOM"},
        "task_group": {"tasks": [_task(offer, "in-group")]}}}
    call["accept"]["operations"] = [group]
    assert post(_api(shared_cluster), call, sub.stream_id) == (202, "")
    status = sub.take(lambda e: e["type"] == "UPDATE")["update"]["status"]
    assert status["task_id"]["value"] == "in-group"
    assert status["state"] == "TASK_ERROR" and "DEFAULT" in status["message"]
