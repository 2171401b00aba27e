"""The web UI's sandbox relay and an operator's credentials: anything may register as an agent
when agents do not authenticate, so the relay must not hand the operator's ``Authorization``
header to whatever did. A process of the test registers on the real master's agent link with
its own HTTP listener as the agent's address, and records what the relay sends it."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import grpc
import pytest
import requests

from agent_runtime.proto import internal_pb2, internal_pb2_grpc
from tests.harness.cluster import Cluster, get_json

OPERATOR = "Basic " + base64.b64encode(b"ops:s3cret").decode()


class _Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        type(self).seen.append(dict(self.headers))
        body = json.dumps({"data": "", "offset": 0}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def listener() -> Iterator[tuple[int, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []
    handler = type("Recorder", (_Recorder,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()


def _master(tmp_path: Path, *extra: str) -> Cluster:
    credentials = tmp_path / "credentials"
    credentials.write_text(json.dumps({"credentials": [
        {"principal": "ops", "secret": "s3cret"}, {"principal": "agent", "secret": "agentpw"}]}))
    cluster = Cluster(str(tmp_path), agents=0, master_flags=[
        f"--credentials={credentials}", "--authenticate_http_readonly", *extra])
    cluster.start_master()
    return cluster


async def _relay_through_a_registered_agent(cluster: Cluster, port: int,
                                            credential: tuple[str, str] | None) -> int:
    """Register on the agent link as an agent at 127.0.0.1:port, then ask the relay, as the
    operator, for a file of that agent; the relay's status."""
    link = get_json(cluster.master_url + "/master/agent_link")["port"]
    metadata: tuple[tuple[str, str], ...] = ()
    if credential is not None:
        pair = base64.b64encode(f"{credential[0]}:{credential[1]}".encode()).decode()
        metadata = (("authorization", f"Basic {pair}"),)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{link}") as channel:
        call = internal_pb2_grpc.AgentLinkStub(channel).Connect(metadata=metadata)
        register = internal_pb2.AgentMessage()
        register.register.pid = f"slave(1)@127.0.0.1:{port}"
        register.register.agent_info.hostname = "impostor"
        register.register.agent_info.port = port
        await call.write(register)
        first = await asyncio.wait_for(call.read(), 10)
        assert isinstance(first, internal_pb2.MasterMessage) and first.HasField("registered")
        agent_id = first.registered.agent_id.value
        answer = await asyncio.to_thread(
            requests.get, f"{cluster.master_url}/ui/agents/{agent_id}/files/read",
            params={"path": "/frameworks/x/stdout"}, headers={"Authorization": OPERATOR},
            timeout=10)
        call.cancel()
        return answer.status_code


def test_an_unauthenticated_agent_never_sees_the_operators_credentials(
        tmp_path: Path, listener: tuple[int, list[dict[str, str]]]) -> None:
    port, seen = listener
    cluster = _master(tmp_path)
    try:
        status = asyncio.run(_relay_through_a_registered_agent(cluster, port, None))
    finally:
        cluster.stop()
    assert status == 200
    (headers,) = seen  # the relay did reach it...
    assert "Authorization" not in headers and "authorization" not in headers  # ...bare


def test_an_agent_the_master_authenticated_gets_them_to_decide_as_for_a_direct_call(
        tmp_path: Path, listener: tuple[int, list[dict[str, str]]]) -> None:
    port, seen = listener
    cluster = _master(tmp_path, "--authenticate_agents")
    try:
        status = asyncio.run(
            _relay_through_a_registered_agent(cluster, port, ("agent", "agentpw")))
    finally:
        cluster.stop()
    assert status == 200
    (headers,) = seen
    assert headers.get("Authorization") == OPERATOR
