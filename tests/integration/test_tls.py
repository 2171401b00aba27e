"""TLS (LIBPROCESS_SSL_*) on real processes: a master and an agent that speak only TLS on their
HTTP APIs and the agent link, a task run end to end by ``mesos-execute`` (its executor reaching
the agent over TLS too), and the clients an attacker would try refused: plain HTTP, plain gRPC,
no client certificate, and a certificate from another CA."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator

import grpc
import pytest
import requests

from agent_runtime.proto import internal_pb2, internal_pb2_grpc
from tests.harness.certs import Authority, Pair
from tests.harness.cluster import VENV_BIN, Cluster, get_json, running_cluster
from tests.harness.execute import states

pytestmark = pytest.mark.integration


class Setup:
    def __init__(self, cluster: Cluster, ours: Pair, foreign: Pair, ca: str) -> None:
        self.cluster = cluster
        self.ours = ours
        self.foreign = foreign
        self.ca = ca


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    with tempfile.TemporaryDirectory() as work_dir:
        authority, stranger = Authority(work_dir, "ca"), Authority(work_dir, "other-ca")
        daemon, client, foreign = (authority.issue("daemon"), authority.issue("client"),
                                   stranger.issue("foreign"))
        env = {"LIBPROCESS_SSL_ENABLED": "true", "LIBPROCESS_SSL_CERT_FILE": daemon.cert,
               "LIBPROCESS_SSL_KEY_FILE": daemon.key, "LIBPROCESS_SSL_CA_FILE": authority.cert,
               "LIBPROCESS_SSL_VERIFY_CERT": "1", "LIBPROCESS_SSL_REQUIRE_CERT": "1"}
        with running_cluster(work_dir, env=env) as cluster:
            yield Setup(cluster, client, foreign, authority.cert)


def test_a_task_runs_end_to_end_over_tls(setup: Setup) -> None:
    cluster = setup.cluster
    env = {**os.environ, "LIBPROCESS_SSL_ENABLED": "1", "LIBPROCESS_SSL_CA_FILE": setup.ca,
           "LIBPROCESS_SSL_VERIFY_CERT": "1", "LIBPROCESS_SSL_CERT_FILE": setup.ours.cert,
           "LIBPROCESS_SSL_KEY_FILE": setup.ours.key}
    done = subprocess.run(
        [os.path.join(VENV_BIN, "mesos-execute"), f"--master={cluster.master}",
         "--name=over-tls", "--command=echo secret-ok", "--resources=cpus:0.1;mem:32"],
        capture_output=True, text=True, timeout=60, check=False, env=env)
    assert done.returncode == 0, done.stdout + done.stderr + cluster.logs()
    assert states(done.stdout, "over-tls")[-1] == "TASK_FINISHED", done.stdout
    # The agent is registered over the TLS link, and its state is readable with our cert.
    (agent,) = get_json(cluster.master_url + "/master/slaves", context=cluster.context)["slaves"]
    assert agent["active"] and cluster.master_url.startswith("https://")


def _context(ca: str, pair: Pair | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca)
    if pair is not None:
        context.load_cert_chain(pair.cert, pair.key)
    return context


def _status(url: str, context: ssl.SSLContext) -> int:
    with urllib.request.urlopen(url, timeout=5, context=context) as response:
        return int(response.status)


def test_plain_and_foreign_clients_are_refused(setup: Setup) -> None:
    cluster = setup.cluster
    ports = [cluster.port, *cluster.agent_ports]
    for port in ports:
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/version", timeout=5)
        url = f"https://127.0.0.1:{port}/version"
        # A certificate from our CA is let in (so what follows is refused for its cert)...
        assert _status(url, _context(setup.ca, setup.ours)) == 200
        # ...none, or one from another CA, is not: verification is on and required.
        for pair in (None, setup.foreign):
            with pytest.raises(OSError):
                _status(url, _context(setup.ca, pair))
        # A client that verifies the daemon against another CA does not trust it either.
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            _status(url, _context(os.path.join(os.path.dirname(setup.ca), "other-ca.crt"),
                                  setup.ours))
    asyncio.run(_plain_link_is_refused(cluster))


async def _plain_link_is_refused(cluster: Cluster) -> None:
    port = get_json(cluster.master_url + "/master/agent_link", context=cluster.context)["port"]
    register = internal_pb2.RegisterAgent(version="1.11.0")
    register.agent_info.hostname = "plain"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = internal_pb2_grpc.AgentLinkStub(channel).Connect()
        with pytest.raises(grpc.aio.AioRpcError):
            await call.write(internal_pb2.AgentMessage(register=register))
            await asyncio.wait_for(call.read(), 5)
    slaves = get_json(cluster.master_url + "/master/slaves", context=cluster.context)["slaves"]
    assert [s["hostname"] for s in slaves if s["hostname"] == "plain"] == []
