"""A command task quiet for longer than the agent's ``--http_header_timeout`` still reports its
end. The agent closes idle keep-alive connections after that timeout; it used to write a 408
on them first, which the command executor then read as the answer to its next UPDATE, and the
executor exited: the task ended TASK_FAILED ("Executor exited with status 1") instead of
TASK_FINISHED, and a kill left the task's process behind the executor it no longer had.

Also, on the wire: a kept-alive connection that goes idle is closed without a word, while one
that never sent a request still gets its 408."""

from __future__ import annotations

import asyncio
import socket
import tempfile
from collections.abc import Iterator

import pytest

from agent_runtime.proto import mesos_pb2
from tests.harness.cluster import Cluster, running_cluster
from tests.harness.framework import framework_info, subscribed

TIMEOUT = 2.0  # the agent's --http_header_timeout here; the tasks stay quiet for longer


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with tempfile.TemporaryDirectory() as work_dir, running_cluster(
            work_dir, agent_flags=[f"--http_header_timeout={TIMEOUT:g}secs"]) as running:
        yield running


async def test_a_task_quiet_past_the_header_timeout_finishes(cluster: Cluster) -> None:
    async with subscribed(cluster.master, framework_info()) as framework:
        framework.acknowledge_all = True
        (offer,) = await framework.offers()
        task_id = await framework.launch(offer, f"sleep {TIMEOUT * 3:g}", "quiet")
        await framework.update(task_id, mesos_pb2.TASK_RUNNING)
        status = await framework.update(task_id, timeout=60,
                                        state=mesos_pb2.TASK_FINISHED)
        assert status.source == mesos_pb2.TaskStatus.SOURCE_EXECUTOR


async def test_a_quiet_task_is_killed_by_its_executor(cluster: Cluster) -> None:
    async with subscribed(cluster.master, framework_info()) as framework:
        framework.acknowledge_all = True
        (offer,) = await framework.offers()
        task_id = await framework.launch(offer, "sleep 300", "quiet-killed")
        await framework.update(task_id, mesos_pb2.TASK_RUNNING)
        await asyncio.sleep(TIMEOUT * 2.5)
        await framework.client.kill(task_id, offer.agent_id.value)
        status = await framework.update(task_id, mesos_pb2.TASK_KILLED, timeout=60)
        # The executor's own report: it was still there to kill its task and say so.
        assert status.source == mesos_pb2.TaskStatus.SOURCE_EXECUTOR


def _answer(sock: socket.socket) -> bytes:
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk


def test_idle_keep_alive_is_closed_silently_a_silent_client_gets_408(cluster: Cluster) -> None:
    port = cluster.agent_ports[0]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as kept:
        kept.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        first = kept.recv(4096)
        assert first.startswith(b"HTTP/1.1 200")
        assert _answer(kept) == b""  # closed once idle past the timeout, nothing written
    with socket.create_connection(("127.0.0.1", port), timeout=30) as silent:
        assert _answer(silent).startswith(b"HTTP/1.1 408")
