"""A stranger that opens streams on the master's agent link and never says anything: each is
ended after REGISTER_WITHIN seconds (it held its stream, and its memory, forever before), and
the real agent's link is undisturbed."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Iterator

import grpc
import pytest

from agent_runtime.master.agent_link import REGISTER_WITHIN
from agent_runtime.proto import internal_pb2_grpc
from tests.harness.cluster import Cluster, get_json, running_cluster

pytestmark = pytest.mark.slow
STREAMS = 20


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with tempfile.TemporaryDirectory() as work_dir, running_cluster(work_dir) as c:
        yield c


async def test_silent_streams_on_the_agent_link_are_ended(cluster: Cluster) -> None:
    port = get_json(cluster.master_url + "/master/agent_link")["port"]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = internal_pb2_grpc.AgentLinkStub(channel)
        calls = [stub.Connect() for _ in range(STREAMS)]
        started = time.monotonic()
        answers = await asyncio.wait_for(
            asyncio.gather(*(call.read() for call in calls), return_exceptions=True),
            REGISTER_WITHIN + 60)
        waited = time.monotonic() - started
    for answer in answers:
        # Ended with a status, which a real agent answers by trying again later (an `error`
        # message would have been a refusal it exits on).
        assert isinstance(answer, grpc.aio.AioRpcError), answer
        assert answer.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert answer.details() == f"no RegisterAgent message within {REGISTER_WITHIN:g}s"
    assert waited >= REGISTER_WITHIN - 1  # not refused early: given the time an agent has
    (agent,) = get_json(cluster.master_url + "/master/slaves")["slaves"]
    assert agent["active"]  # the real agent's link was never disturbed
