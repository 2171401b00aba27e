"""The agent's operator API: PRUNE_IMAGES reaches the provisioner, calls it does not serve are
501, bad bodies are 400s that say what is wrong. A real aiohttp server on loopback, around an
agent whose containerizer runs nothing (tests/unit/agent/fakes.py)."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agent_runtime.agent.operator_api import OperatorAPI, image_pruner
from agent_runtime.containerizer.composing import ComposingContainerizer
from agent_runtime.containerizer.launcher import PosixLauncher
from agent_runtime.containerizer.mesos import MesosContainerizer
from agent_runtime.http_util import MAX_BODY, error_middleware
from tests.unit.agent.fakes import make_agent

PRUNE = {"type": "PRUNE_IMAGES", "prune_images": {"excluded_images": [
    {"type": "DOCKER", "docker": {"name": "busybox"}},
    {"type": "APPC", "appc": {"name": "coreos.com/etcd"}}]}}


class Pruner:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    async def prune_images(self, excluded: Sequence[str] = ()) -> object:
        self.calls.append(list(excluded))
        return None


@pytest.fixture
async def served() -> AsyncIterator[tuple[TestClient[Any, Any], Pruner]]:
    pruner = Pruner()
    with tempfile.TemporaryDirectory() as work_dir:
        api = OperatorAPI(make_agent(work_dir, []), pruner.prune_images)
        app = web.Application(middlewares=[error_middleware], client_max_size=MAX_BODY)
        app.router.add_route("*", "/api/v1", api.handle)
        async with TestClient(TestServer(app)) as client:
            yield client, pruner


async def test_prune_images_answers_200_and_passes_the_docker_names(
        served: tuple[TestClient[Any, Any], Pruner]) -> None:
    client, pruner = served
    response = await client.post("/api/v1", json=PRUNE)
    assert response.status == 200 and await response.text() == ""
    response = await client.post("/api/v1", json={"type": "PRUNE_IMAGES"})
    assert response.status == 200
    assert pruner.calls == [["busybox"], []]


@pytest.mark.parametrize(("body", "content_type", "status", "message"), [
    (b'{"type": "LAUNCH_CONTAINER"}', "application/json", 501,
     "Call LAUNCH_CONTAINER is not implemented by this agent"),
    (b"{", "application/json", 400, "Failed to parse body into JSON"),
    (b"[]", "application/json", 400, "Expected a JSON object for Call"),
    (b"{}", "application/json", 400, "Expecting 'type' to be present"),
    (b'{"type": 0}', "application/json", 400, "Expecting 'type' to be present"),
    (b'{"type": "PRUNE_IMAGES", "prune_images": []}', "application/json", 400,
     "prune_images"),
    (b'{"type": "PRUNE_IMAGES", "prune_images": {"excluded_images": 5}}', "application/json",
     400, "excluded_images"),
    (b'{"type": "PRUNE_IMAGES", "prune_images": {"excluded_images": [{"type": "OCI"}]}}',
     "application/json", 400, "OCI"),
    (b'{"type": "PRUNE_IMAGES", "prune_images": {"excluded_images": [{"type": "DOCKER"}]}}',
     "application/json", 400, "prune_images.excluded_images[0]: a DOCKER image needs "
     "docker.name"),
    (b"\x08\x63", "application/x-protobuf", 400, "Expecting 'type' to be present"),
    (b"{}", "text/plain", 415, "Expecting 'Content-Type'"),
])
async def test_other_calls_and_bad_bodies_say_what_is_wrong(
        served: tuple[TestClient[Any, Any], Pruner], body: bytes, content_type: str,
        status: int, message: str) -> None:
    client, pruner = served
    response = await client.post("/api/v1", data=body, headers={"Content-Type": content_type})
    assert response.status == status
    assert message in await response.text()
    assert pruner.calls == []


async def test_only_post_is_taken(served: tuple[TestClient[Any, Any], Pruner]) -> None:
    client, _ = served
    response = await client.get("/api/v1")
    assert response.status == 405


async def test_the_containerizer_prunes_through_the_mesos_containerizers_provisioner() -> None:
    pruner = Pruner()
    mesos = MesosContainerizer(PosixLauncher(), provisioner=pruner)  # type: ignore[arg-type]
    await image_pruner(ComposingContainerizer({"mesos": mesos}))(["busybox"])
    assert pruner.calls == [["busybox"]]
    # Without an image store there is nothing to prune, and no error (as in Mesos).
    await image_pruner(ComposingContainerizer({"mesos": MesosContainerizer(PosixLauncher())}))([])
