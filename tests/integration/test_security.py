"""Authentication, authorization, executor and agent identity, hostile clients (issue 13), on a
real master and agent, each attack as an outsider would make it."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import grpc
import jwt
import pytest
import requests

from agent_runtime.proto import internal_pb2, internal_pb2_grpc, mesos_pb2, scheduler_pb2
from agent_runtime.scheduler.client import SchedulerClient
from tests.harness.cluster import VENV_BIN, Cluster, free_port, get_json, running_cluster
from tests.harness.framework import TestFramework, command_task, framework_info

pytestmark = pytest.mark.integration
SECRETS = {"ops": "opsecret", "dev": "devsecret", "fw-a": "asecret", "fw-b": "bsecret",
           "agent": "agentsecret", "rogue": "roguesecret"}
ACLS = {
    "permissive": True,
    "reserve_resources": [
        {"principals": {"values": ["ops"]}, "roles": {"values": ["ads"]}},
        {"principals": {"type": "NONE"}, "roles": {"values": ["ads"]}}],
    "update_quotas": [
        {"principals": {"values": ["ops"]}, "roles": {"type": "ANY"}},
        {"principals": {"type": "NONE"}, "roles": {"type": "ANY"}}],
    "teardown_frameworks": [
        {"principals": {"values": ["ops"]}, "framework_principals": {"type": "ANY"}},
        {"principals": {"type": "NONE"}, "framework_principals": {"type": "ANY"}}],
}
TOKEN = "MESOS_EXECUTOR_AUTHENTICATION_TOKEN"
Event = scheduler_pb2.Event


def _write(directory: str, name: str, data: Any) -> str:
    path = os.path.join(directory, name)
    with open(path, "w") as handle:
        handle.write(data if isinstance(data, str) else json.dumps(data))
    return path


@pytest.fixture(scope="module")
def secure() -> Iterator[Cluster]:
    with tempfile.TemporaryDirectory() as work_dir:
        # The text format, as Mesos reads it: one 'principal secret' pair a line.
        credentials = _write(work_dir, "credentials",
                             "".join(f"{p} {s}\n" for p, s in SECRETS.items()))
        credential = _write(work_dir, "credential",
                            {"principal": "agent", "secret": SECRETS["agent"]})
        with running_cluster(work_dir, master_flags=[
            f"--credentials={credentials}", "--authenticate_http_readwrite",
            "--authenticate_frameworks", "--authenticate_agents",
            f"--acls={_write(work_dir, 'acls', ACLS)}",
        ], agent_flags=[
            f"--credential=file://{credential}",
            "--resources=cpus:4;mem:2048;disk:1024;cpus(ads):2;mem(ads):512",
        ]) as cluster:
            yield cluster


def _agent_id(cluster: Cluster) -> str:
    """The real agent's id (a test below registers a rogue one too)."""
    (agent,) = [a for a in get_json(cluster.master_url + "/master/slaves")["slaves"]
                if a["hostname"] != "rogue"]
    return str(agent["id"])


async def _offer(framework: TestFramework, cluster: Cluster) -> mesos_pb2.Offer:
    """An offer of the real agent (declining any other)."""
    while True:
        for offer in await framework.offers():
            if offer.agent_id.value == _agent_id(cluster):
                return offer
            await framework.client.decline([offer.id.value], refuse_seconds=60)


def _reserved(value: float, name: str, principal: str = "ops") -> dict[str, Any]:
    return {"name": name, "type": "SCALAR", "scalar": {"value": value}, "role": "ads",
            "reservation": {"principal": principal}}


def _curl(url: str, user: str | None, **fields: str) -> tuple[int, str]:
    """``curl -u principal:password -d ... -X POST``, as seed 001 does it."""
    argv = ["curl", "-sS", "--max-time", "10", "-X", "POST", "-w", "\n%{http_code}"]
    argv += ["-u", user] if user else []
    for key, value in fields.items():
        argv += ["--data-urlencode", f"{key}={value}"]
    done = subprocess.run([*argv, url], capture_output=True, check=True, text=True)
    text, _, code = done.stdout.rpartition("\n")
    return int(code), text


def test_writes_need_credentials_and_a_wrong_password_is_refused(secure: Cluster) -> None:
    url = secure.master_url
    writes: list[tuple[str, str, Any]] = [
        ("POST", "/master/teardown", {"data": {"frameworkId": "x"}}),
        ("POST", "/master/reserve", {"data": {"slaveId": "x", "resources": "[]"}}),
        ("POST", "/master/unreserve", {"data": {"slaveId": "x", "resources": "[]"}}),
        ("POST", "/quota", {"json": {"role": "ads", "guarantee": []}}),
        ("PUT", "/weights", {"json": [{"role": "ads", "weight": 2}]}),
        ("POST", "/api/v1", {"json": {"type": "TEARDOWN",
                                      "teardown": {"framework_id": {"value": "x"}}}}),
    ]
    for method, path, body in writes:
        for auth in (None, ("ops", "wrong"), ("nobody", "opsecret")):
            response = requests.request(method, url + path, auth=auth, timeout=5, **body)
            assert response.status_code == 401, (path, auth, response.text)
            assert response.headers["WWW-Authenticate"] == \
                'Basic realm="mesos-master-readwrite"'
    # Reads stay open (--authenticate_http_readonly is off); the credentials file is a path.
    state = requests.get(url + "/master/state", timeout=5)
    assert state.status_code == 200
    assert state.json()["flags"]["credentials"].endswith("/credentials")


def test_seed_001_reserve_unreserve_and_quota_with_authentication_and_acls(
        secure: Cluster) -> None:
    agent_id = _agent_id(secure)
    resources = json.dumps([_reserved(1, "cpus"), _reserved(128, "mem")])
    reserve, unreserve = secure.master_url + "/master/reserve", \
        secure.master_url + "/master/unreserve"
    # Another principal, correctly authenticated, is not allowed to reserve for ads.
    code, text = _curl(reserve, "dev:devsecret", slaveId=agent_id,
                       resources=json.dumps([_reserved(1, "cpus", "dev")]))
    assert code == 403 and "reserve_resources" in text and "dev" in text
    # A reservation's principal must be the caller's.
    code, text = _curl(reserve, "ops:opsecret", slaveId=agent_id,
                       resources=json.dumps([_reserved(1, "cpus", "someone-else")]))
    assert code == 400 and "principal" in text
    code, text = _curl(reserve, "ops:opsecret", slaveId=agent_id, resources=resources)
    assert (code, text) == (202, "")
    (agent,) = get_json(secure.master_url + "/master/slaves")["slaves"]
    dynamic = [r for r in agent["reserved_resources_full"]["ads"]
               if r["reservations"][-1]["type"] == "DYNAMIC"]
    assert {r["reservations"][-1]["principal"] for r in dynamic} == {"ops"}
    code, text = _curl(unreserve, "ops:opsecret", slaveId=agent_id, resources=resources)
    assert (code, text) == (202, "")

    quota = {"role": "ads", "guarantee": [{"name": "cpus", "type": "SCALAR",
                                           "scalar": {"value": 1}}]}
    url = secure.master_url + "/quota"
    denied = requests.post(url, json=quota, auth=("dev", "devsecret"), timeout=5)
    assert denied.status_code == 403 and "update_quotas" in denied.text
    done = requests.post(url, json=quota, auth=("ops", "opsecret"), timeout=5)
    assert done.status_code == 200, done.text
    (info,) = requests.get(url, timeout=5).json()["infos"]
    assert info["principal"] == "ops"
    assert requests.delete(url + "/ads", auth=("ops", "opsecret"), timeout=5).status_code == 200


def test_out_of_range_quota_and_weights_are_400_and_change_nothing(secure: Cluster) -> None:
    ops = ("ops", "opsecret")
    update = {"type": "UPDATE_QUOTA", "update_quota": {"quota_configs": [
        {"role": "ads", "guarantees": {"cpus": {"value": 1e308}}}]}}
    response = requests.post(secure.master_url + "/api/v1", json=update, auth=ops, timeout=5)
    assert response.status_code == 400 and "out of range" in response.text
    for weight in (1e308, 1e-300):
        response = requests.put(secure.master_url + "/weights", auth=ops, timeout=5,
                                json=[{"role": "ads", "weight": weight}])
        assert response.status_code == 400 and "weight" in response.text
    assert requests.get(secure.master_url + "/quota", timeout=5).json().get("infos", []) == []
    assert requests.get(secure.master_url + "/weights", timeout=5).json() == []


def _client(cluster: Cluster, principal: str, info_principal: str | None = None,
            name: str = "secure", framework_id: str | None = None) -> SchedulerClient:
    info = framework_info(name, principal=info_principal or principal)
    if framework_id:
        info.id.value = framework_id
    return SchedulerClient(cluster.master, info, auth=(principal, SECRETS[principal]))


@pytest.fixture
async def framework_a(secure: Cluster) -> AsyncIterator[TestFramework]:
    # The name carries a forged log line; it must stay on the line it was logged in.
    async with _client(secure, "fw-a", name="a\nE 0101 00:00:00 forged] line") as client:
        framework = TestFramework(client)
        await framework.start()
        yield framework
        await client.teardown()
        await framework.stop()


async def _subscribe_status(cluster: Cluster, body: dict[str, Any],
                            auth: tuple[str, str] | None) -> tuple[int, str]:
    headers = {"Authorization": aiohttp.encode_basic_auth(*auth)} if auth else {}
    async with aiohttp.ClientSession() as session, session.post(
        f"http://{cluster.master}/api/v1/scheduler", json=body, headers=headers,
        timeout=aiohttp.ClientTimeout(total=5)) as response:
        if response.status == 200:
            return 200, ""
        return response.status, await response.text()


async def test_frameworks_authenticate_and_fail_over_only_as_themselves(
        secure: Cluster, framework_a: TestFramework) -> None:
    info = {"user": "root", "name": "x", "principal": "fw-b"}
    body = {"type": "SUBSCRIBE", "subscribe": {"framework_info": info}}
    assert (await _subscribe_status(secure, body, None))[0] == 401
    assert (await _subscribe_status(secure, body, ("fw-b", "wrong")))[0] == 401
    code, text = await _subscribe_status(secure, body, ("fw-a", SECRETS["fw-a"]))
    assert code == 403 and "does not match" in text
    # fw-b, authenticated as itself, names fw-a's framework id: no failover, no teardown.
    victim = framework_a.client.framework_id
    assert victim is not None
    stolen = {**info, "id": {"value": victim}}
    code, text = await _subscribe_status(
        secure, {"type": "SUBSCRIBE", "framework_id": {"value": victim},
                 "subscribe": {"framework_info": stolen}}, ("fw-b", SECRETS["fw-b"]))
    assert code == 403 and "same principal" in text
    (framework,) = [f for f in get_json(secure.master_url + "/master/frameworks")["frameworks"]
                    if f["id"] == victim]
    assert framework["active"] and framework["principal"] == "fw-a"
    # Nor may another operator tear it down without the ACL (ops may; dev may not).
    code, text = _curl(secure.master_url + "/master/teardown", "dev:devsecret",
                       frameworkId=victim)
    assert code == 403 and "teardown_frameworks" in text
    log = secure.log("master")
    assert "forged] line" in log and not any(
        line.startswith("E 0101") for line in log.splitlines())


def _executor_token(cluster: Cluster, framework_id: str, executor_id: str) -> str:
    """The token the agent gave the executor running ``executor_id``: made here as the agent
    makes it (a task that stole its own executor's token holds no more than this)."""
    containers = get_json(f"http://127.0.0.1:{cluster.agent_ports[0]}/containers")
    (container_id,) = [c["container_id"] for c in containers if c["executor_id"] == executor_id]
    with open(os.path.join(cluster.work_dir, "agent0", "meta", "executor_secret_key"),
              "rb") as handle:
        key = handle.read()
    claims = {"cid": container_id, "fid": framework_id, "eid": executor_id}
    return jwt.encode(claims, key, algorithm="HS256")


async def test_an_executor_cannot_speak_for_another_frameworks_executor(
        secure: Cluster, framework_a: TestFramework) -> None:
    (offer,) = await framework_a.offers()
    victim = await framework_a.running(offer, "env > env.txt; sleep 300",
                                       task_id=f"victim-{uuid.uuid4()}")
    # What is left goes to the other framework.
    (rest,) = await framework_a.offers()
    await framework_a.client.decline([rest.id.value], refuse_seconds=60)
    async with _client(secure, "fw-b") as client:
        framework_b = TestFramework(client)
        await framework_b.start()
        (offer_b,) = await framework_b.offers()
        thief = await framework_b.running(offer_b, "sleep 300", task_id=f"thief-{uuid.uuid4()}")
        stolen = _executor_token(secure, client.framework_id or "", thief)
        forged = {"type": "UPDATE", "framework_id": {"value": framework_a.client.framework_id},
                  "executor_id": {"value": victim},
                  "update": {"status": {
                      "task_id": {"value": victim}, "state": "TASK_FINISHED",
                      "source": "SOURCE_EXECUTOR", "timestamp": time.time(),
                      "uuid": base64.b64encode(uuid.uuid4().bytes).decode()}}}
        url = f"http://127.0.0.1:{secure.agent_ports[0]}/api/v1/executor"
        response = requests.post(url, json=forged, timeout=5)
        assert response.status_code == 401 and "Bearer" in response.headers["WWW-Authenticate"]
        response = requests.post(url, json=forged, timeout=5,
                                 headers={"Authorization": f"Bearer {stolen}"})
        assert response.status_code == 403 and "does not authorize" in response.text
        subscribe = {**forged, "type": "SUBSCRIBE", "subscribe": {}}
        del subscribe["update"]
        response = requests.post(url, json=subscribe, timeout=5,
                                 headers={"Authorization": f"Bearer {stolen}"})
        assert response.status_code == 403
        await client.teardown()
        await framework_b.stop()
    tasks = get_json(secure.master_url + "/master/tasks")["tasks"]
    assert [t["state"] for t in tasks if t["id"] == victim] == ["TASK_RUNNING"]
    assert not [e for e in framework_a.events if e.type == Event.UPDATE
                and e.update.status.state == mesos_pb2.TASK_FINISHED]
    # The task itself never sees its executor's token.
    state = get_json(f"http://127.0.0.1:{secure.agent_ports[0]}/state")
    (directory,) = [e["directory"] for f in state["frameworks"] for e in f["executors"]
                    if e["id"] == victim]
    with open(os.path.join(directory, "env.txt")) as handle:
        assert TOKEN not in handle.read()


async def _link(cluster: Cluster, register: internal_pb2.RegisterAgent,
                principal: str | None, secret: str | None = None
                ) -> tuple[internal_pb2.MasterMessage, Any, grpc.aio.Channel]:
    port = get_json(cluster.master_url + "/master/agent_link")["port"]
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    metadata: tuple[tuple[str, str], ...] = ()
    if principal is not None:
        pair = f"{principal}:{secret or SECRETS[principal]}".encode()
        metadata = (("authorization", f"Basic {base64.b64encode(pair).decode()}"),)
    call = internal_pb2_grpc.AgentLinkStub(channel).Connect(metadata=metadata)
    await call.write(internal_pb2.AgentMessage(register=register))
    first = await asyncio.wait_for(call.read(), 10)
    assert isinstance(first, internal_pb2.MasterMessage)
    return first, call, channel


async def test_the_agent_link_needs_credentials_and_an_agent_id_keeps_its_principal(
        secure: Cluster, framework_a: TestFramework) -> None:
    (offer,) = await framework_a.offers()
    task_id = await framework_a.running(offer, "sleep 300", task_id=f"linked-{uuid.uuid4()}")
    register = internal_pb2.RegisterAgent(version="1.11.0", pid="slave(1)@127.0.0.1:1")
    register.agent_info.hostname = "rogue"
    register.agent_info.resources.add(name="cpus", type=mesos_pb2.Value.SCALAR).scalar.value = 1
    for principal, secret in ((None, None), ("rogue", "wrong")):
        first, _, channel = await _link(secure, register, principal, secret)
        assert "authenticat" in first.error
        await channel.close()
    # A rogue with valid credentials cannot take over the real agent's id...
    takeover = internal_pb2.RegisterAgent()
    takeover.CopyFrom(register)
    takeover.agent_info.id.value = _agent_id(secure)
    first, _, channel = await _link(secure, takeover, "rogue")
    assert "another principal" in first.error
    await channel.close()
    # ...and, registered as itself, cannot end tasks that run on another agent.
    first, call, channel = await _link(secure, register, "rogue")
    assert first.WhichOneof("kind") == "registered"
    forged = internal_pb2.AgentMessage()
    forged.status_update.framework_id.value = framework_a.client.framework_id or ""
    forged.status_update.status.task_id.value = task_id
    forged.status_update.status.state = mesos_pb2.TASK_FINISHED
    forged.status_update.status.uuid = uuid.uuid4().bytes
    await call.write(forged)
    await asyncio.sleep(0.5)
    await channel.close()
    tasks = get_json(secure.master_url + "/master/tasks")["tasks"]
    assert [t["state"] for t in tasks if t["id"] == task_id] == ["TASK_RUNNING"]
    assert not [e for e in framework_a.events if e.type == Event.UPDATE
                and e.update.status.state == mesos_pb2.TASK_FINISHED]
    assert [a["id"] for a in get_json(secure.master_url + "/master/slaves")["slaves"]
            if a["active"] and a["hostname"] != "rogue"] == [_agent_id(secure)]


async def test_a_task_info_too_large_for_the_agent_link_is_a_task_error(
        secure: Cluster, framework_a: TestFramework) -> None:
    offer = await _offer(framework_a, secure)
    big = command_task(offer, "sleep 300", task_id="big")
    big.data = b"x" * (5 << 20)
    await framework_a.client.accept([offer.id.value], [big], refuse_seconds=0)
    status = await framework_a.update("big")
    assert status.state == mesos_pb2.TASK_ERROR and "agent link" in status.message
    # The link is whole: a task launched next runs, and a kill reaches it.
    offer = await _offer(framework_a, secure)
    task_id = await framework_a.running(offer, "sleep 300", task_id="after-big")
    await framework_a.client.kill(task_id, offer.agent_id.value)
    assert (await framework_a.update(task_id, mesos_pb2.TASK_KILLED)).state == \
        mesos_pb2.TASK_KILLED


def test_half_sent_requests_cannot_hold_the_master() -> None:
    with tempfile.TemporaryDirectory() as work_dir, running_cluster(
        work_dir, agents=0,
        # 5 s: slots must not free (408) before the master has taken all 40; each run waits it.
        master_flags=["--max_http_connections=20", "--http_header_timeout=5secs"],
    ) as cluster:
        held = []
        for _ in range(40):
            sock = socket.create_connection(("127.0.0.1", cluster.port), timeout=60)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # and never the end
            held.append(sock)
        answers = []
        for sock in held:
            try:
                answers.append(sock.recv(4096))
            except OSError:
                answers.append(b"")
        busy = [a for a in answers if a.startswith(b"HTTP/1.1 503")]
        slow = [a for a in answers if a.startswith(b"HTTP/1.1 408")]
        assert len(busy) >= 15 and len(slow) >= 15, answers
        for sock in held:
            sock.close()
        assert requests.get(cluster.master_url + "/health", timeout=5).status_code == 200
        log = cluster.log("master")
        assert log.count("HTTP connections refused") <= 2, log


def test_an_agent_whose_credential_is_refused_exits_with_status_1(
        secure: Cluster, tmp_path: Any) -> None:
    wrong = _write(str(tmp_path), "credential", {"principal": "agent", "secret": "not-it"})
    done = subprocess.run(
        [os.path.join(VENV_BIN, "mesos-agent"), f"--master={secure.master}",
         f"--port={free_port()}", f"--work_dir={tmp_path / 'work'}",
         f"--credential=file://{wrong}", "--resources=cpus:1;mem:128"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert "master refused registration" in done.stderr


async def test_an_agent_id_keeps_its_principal_across_a_master_failover(tmp_path: Any) -> None:
    """The binding was in the master's memory: after a restart, a link with another valid
    principal could take a real agent's id before the agent came back."""
    work = str(tmp_path)
    credentials = _write(work, "credentials", "".join(f"{p} {s}\n" for p, s in SECRETS.items()))
    credential = _write(work, "credential", {"principal": "agent", "secret": SECRETS["agent"]})
    with running_cluster(work, master_flags=[
        f"--credentials={credentials}", "--authenticate_agents",
        f"--work_dir={os.path.join(work, 'master-work')}",
    ], agent_flags=[f"--credential=file://{credential}"]) as cluster:
        (agent,) = get_json(cluster.master_url + "/master/slaves")["slaves"]
        stopped = cluster.processes["agent0"]
        stopped.send_signal(signal.SIGSTOP)  # it will not come back first
        try:
            cluster.kill("master", signal.SIGKILL)
            cluster.start_master()
            takeover = internal_pb2.RegisterAgent(version="1.11.0", pid="slave(1)@127.0.0.1:1")
            takeover.agent_info.CopyFrom(mesos_pb2.AgentInfo(hostname="rogue"))
            takeover.agent_info.id.value = agent["id"]
            first, _, channel = await _link(cluster, takeover, "rogue")
            assert "another principal" in first.error
            await channel.close()
        finally:
            stopped.send_signal(signal.SIGCONT)
        # The real agent, with its own principal, re-registers under its id.
        cluster.wait_agents(1)
        (back,) = get_json(cluster.master_url + "/master/slaves")["slaves"]
        assert back["id"] == agent["id"] and back["hostname"] != "rogue"
