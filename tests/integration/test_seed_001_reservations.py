"""Seed 001: static and dynamic reservations, unreservation, quota and weights, as the post does
them (curl with form fields and an operator principal), plus the bad requests around them."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.harness.cluster import Cluster, get_json, running_cluster
from tests.harness.curl import Subscription, post

STATIC = "cpus:4;mem:2048;cpus(ads):8;mem(ads):4096"


def _reserved(value: float, name: str, principal: str = "ops") -> dict[str, Any]:
    # The post's body: the pre-1.4 `role` plus `reservation` form.
    return {"name": name, "type": "SCALAR", "scalar": {"value": value}, "role": "ads",
            "reservation": {"principal": principal}}


def curl_form(url: str, user: str | None = None, **fields: str) -> tuple[int, str]:
    argv = ["curl", "-sS", "--max-time", "10", "-X", "POST", "-w", "\n%{http_code}"]
    if user:
        argv += ["-u", user]
    for key, value in fields.items():
        argv += ["--data-urlencode", f"{key}={value}"]
    done = subprocess.run([*argv, url], capture_output=True, check=True, text=True)
    text, _, code = done.stdout.rpartition("\n")
    return int(code), text


@pytest.fixture(scope="module")
def ads_cluster() -> Iterator[Cluster]:
    with tempfile.TemporaryDirectory() as work_dir, running_cluster(
        work_dir,
        master_flags=[f"--work_dir={os.path.join(work_dir, 'master')}"],
        agent_flags=[f"--resources={STATIC};disk:1024"],
    ) as cluster:
        yield cluster


def _agent(cluster: Cluster) -> dict[str, Any]:
    (agent,) = get_json(cluster.master_url + "/master/slaves")["slaves"]
    return dict(agent)


def _offer_roles(cluster: Cluster, role: str) -> list[dict[str, Any]]:
    body = {"type": "SUBSCRIBE", "subscribe": {"framework_info": {
        "user": "root", "name": f"in-{role}", "role": role}}}
    sub = Subscription(cluster.master_url + "/api/v1/scheduler", body)
    try:
        offers = sub.take_offers(timeout=10)
        framework_id = sub.events[0]["subscribed"]["framework_id"]
        post(cluster.master_url + "/api/v1/scheduler",
             {"type": "TEARDOWN", "framework_id": framework_id}, sub.stream_id)
    finally:
        sub.close()
    return [r for offer in offers for r in offer["resources"]]


def test_static_reservation_is_offered_only_to_its_role(ads_cluster: Cluster) -> None:
    agent = _agent(ads_cluster)
    assert agent["reserved_resources"]["ads"]["cpus"] == 8
    assert agent["unreserved_resources"]["cpus"] == 4
    star = _offer_roles(ads_cluster, "*")
    assert {r.get("role", "*") for r in star} == {"*"}
    assert sum(r["scalar"]["value"] for r in star if r["name"] == "cpus") == 4
    ads = _offer_roles(ads_cluster, "ads")
    reserved_cpus = [r for r in ads if r["name"] == "cpus" and r.get("reservations")]
    assert reserved_cpus and reserved_cpus[0]["reservations"][0]["role"] == "ads"
    assert sum(r["scalar"]["value"] for r in ads if r["name"] == "cpus") == 12
    assert all(r["allocation_info"]["role"] == "ads" for r in ads)


def test_dynamic_reserve_and_unreserve_with_the_posts_request(ads_cluster: Cluster) -> None:
    agent_id = _agent(ads_cluster)["id"]
    resources = json.dumps([_reserved(2, "cpus"), _reserved(512, "mem")])
    code, text = curl_form(ads_cluster.master_url + "/master/reserve", "ops:secret",
                           slaveId=agent_id, resources=resources)
    assert (code, text) == (202, "")
    agent = _agent(ads_cluster)
    assert agent["reserved_resources"]["ads"]["cpus"] == 10
    assert agent["unreserved_resources"]["cpus"] == 2
    dynamic = [r for r in agent["reserved_resources_full"]["ads"]
               if r["reservations"][-1]["type"] == "DYNAMIC"]
    assert {r["name"] for r in dynamic} == {"cpus", "mem"}
    assert all(r["reservations"][-1]["principal"] == "ops" for r in dynamic)
    # Only `ads` gets the newly reserved cpus.
    star = _offer_roles(ads_cluster, "*")
    assert sum(r["scalar"]["value"] for r in star if r["name"] == "cpus") == 2

    code, text = curl_form(ads_cluster.master_url + "/master/unreserve", "ops:secret",
                           slaveId=agent_id, resources=resources)
    assert (code, text) == (202, "")
    agent = _agent(ads_cluster)
    assert agent["reserved_resources"]["ads"]["cpus"] == 8
    assert agent["unreserved_resources"]["cpus"] == 4


@pytest.mark.parametrize(
    ("fields", "status", "words"),
    [
        ({"slaveId": "no-such-agent"}, 400, "No agent found"),
        ({"resources": json.dumps([_reserved(100, "cpus")])}, 409, "does not have"),
        ({"resources": json.dumps([{**_reserved(1, "cpus"), "role": "bad role"}])}, 400,
         "role"),
        ({"resources": json.dumps([_reserved(-1, "cpus")])}, 400, "negative"),
        ({"resources": json.dumps([{"name": "cpus", "type": "SCALAR",
                                    "scalar": {"value": 1}}])}, 400, "DYNAMIC"),
        ({"resources": "[{not json"}, 400, "resources"),
        ({"resources": json.dumps([_reserved(1, "cpus", principal="someone-else")])}, 400,
         "principal"),
    ],
)
def test_bad_reserve_requests_change_nothing(ads_cluster: Cluster, fields: dict[str, str],
                                             status: int, words: str) -> None:
    before = _agent(ads_cluster)
    form = {"slaveId": before["id"], "resources": json.dumps([_reserved(1, "cpus")]), **fields}
    code, text = curl_form(ads_cluster.master_url + "/master/reserve", "ops:secret", **form)
    assert code == status, text
    assert words in text
    after = _agent(ads_cluster)
    assert after["reserved_resources_full"] == before["reserved_resources_full"]
    assert after["unreserved_resources"] == before["unreserved_resources"]


def test_unreserve_of_what_is_not_reserved_is_refused(ads_cluster: Cluster) -> None:
    agent_id = _agent(ads_cluster)["id"]
    code, text = curl_form(ads_cluster.master_url + "/master/unreserve", "ops:secret",
                           slaveId=agent_id, resources=json.dumps([_reserved(1, "cpus")]))
    assert code == 400 and "no reservation" in text


def test_quota_set_show_and_remove(ads_cluster: Cluster) -> None:
    url = ads_cluster.master_url + "/quota"
    request = {"role": "ads", "guarantee": [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 2}},
        {"name": "mem", "type": "SCALAR", "scalar": {"value": 1024}}]}
    response = requests.post(url, json=request, auth=("ops", "secret"), timeout=5)
    assert response.status_code == 200, response.text
    status = requests.get(url, timeout=5).json()
    (info,) = status["infos"]
    assert info["role"] == "ads" and info["principal"] == "ops"
    (config,) = status["configs"]
    assert config["guarantees"]["cpus"]["value"] == 2
    assert config["limits"]["mem"]["value"] == 1024
    (role,) = [r for r in get_json(ads_cluster.master_url + "/master/roles")["roles"]
               if r["name"] == "ads"]
    assert role["quota"]["guarantee"] == {"cpus": 2.0, "mem": 1024.0}
    # The static reservation of ads counts as consumed quota, as in Mesos.
    assert role["quota"]["consumed"]["cpus"] >= 8

    again = requests.post(url, json=request, timeout=5)
    assert again.status_code == 400 and "already has quota" in again.text
    too_much = requests.post(url, json={"role": "big", "guarantee": [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1000}}]}, timeout=5)
    assert too_much.status_code == 409 and "force" in too_much.text
    ports = requests.post(url, json={"role": "p", "guarantee": [
        {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 1, "end": 2}]}}]},
        timeout=5)
    assert ports.status_code == 400 and "scalar" in ports.text

    assert requests.delete(url + "/ads", timeout=5).status_code == 200
    assert requests.get(url, timeout=5).json() == {}
    missing = requests.delete(url + "/ads", timeout=5)
    assert missing.status_code == 400 and "no quota" in missing.text


def test_weights_and_v1_operator_calls(ads_cluster: Cluster) -> None:
    url = ads_cluster.master_url + "/weights"
    assert requests.put(url, json=[{"role": "ads", "weight": 2.5}], timeout=5).status_code == 200
    assert {"role": "ads", "weight": 2.5} in requests.get(url, timeout=5).json()
    bad = requests.put(url, json=[{"role": "ads", "weight": 0}], timeout=5)
    assert bad.status_code == 400 and "above 0" in bad.text

    api = ads_cluster.master_url + "/api/v1"
    update = {"type": "UPDATE_QUOTA", "update_quota": {"quota_configs": [
        {"role": "dev", "guarantees": {"cpus": {"value": 1}}, "limits": {"cpus": {"value": 2}}}]}}
    response = requests.post(api, json=update, timeout=5)
    assert response.status_code == 200, response.text
    got = requests.post(api, json={"type": "GET_QUOTA"}, timeout=5).json()
    assert got["type"] == "GET_QUOTA"
    (config,) = [c for c in got["get_quota"]["status"]["configs"] if c["role"] == "dev"]
    assert config["limits"]["cpus"]["value"] == 2
    inverted = {"type": "UPDATE_QUOTA", "update_quota": {"quota_configs": [
        {"role": "dev", "guarantees": {"cpus": {"value": 3}}, "limits": {"cpus": {"value": 2}}}]}}
    response = requests.post(api, json=inverted, timeout=5)
    assert response.status_code == 400 and "above its limit" in response.text
    weights = requests.post(api, json={"type": "GET_WEIGHTS"}, timeout=5).json()
    assert {"role": "ads", "weight": 2.5} in weights["get_weights"]["weight_infos"]


def test_reservations_quota_and_weights_survive_a_master_restart(ads_cluster: Cluster) -> None:
    agent_id = _agent(ads_cluster)["id"]
    resources = json.dumps([_reserved(1, "cpus")])
    assert curl_form(ads_cluster.master_url + "/master/reserve", "ops:secret",
                     slaveId=agent_id, resources=resources)[0] == 202
    requests.put(ads_cluster.master_url + "/weights", json=[{"role": "keep", "weight": 3}],
                 timeout=5)
    requests.post(ads_cluster.master_url + "/quota", json={"role": "kept", "guarantee": [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}}]}, timeout=5)

    ads_cluster.kill("master")
    ads_cluster.start_master()
    ads_cluster.wait_agents(1)
    deadline = time.time() + 10
    while time.time() < deadline:
        agent = _agent(ads_cluster)
        if agent["reserved_resources"].get("ads", {}).get("cpus") == 9:
            break
        time.sleep(0.1)
    assert agent["id"] == agent_id
    assert agent["reserved_resources"]["ads"]["cpus"] == 9
    weights = requests.get(ads_cluster.master_url + "/weights", timeout=5).json()
    assert {"role": "keep", "weight": 3.0} in weights
    quota = requests.get(ads_cluster.master_url + "/quota", timeout=5).json()
    assert "kept" in [c["role"] for c in quota["configs"]]
    assert curl_form(ads_cluster.master_url + "/master/unreserve", "ops:secret",
                     slaveId=agent_id, resources=resources)[0] == 202
