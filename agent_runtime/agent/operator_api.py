"""The agent's v1 operator API (``POST /api/v1``): of Mesos's agent calls, ``PRUNE_IMAGES``.

::

    POST /api/v1  {"type": "PRUNE_IMAGES",
                   "prune_images": {"excluded_images": [{"type": "DOCKER",
                                                         "docker": {"name": "busybox"}}]}}

answers 200 with no body once the images no container uses are gone (as Mesos does), keeping
the excluded ones and ``--image_gc_config``'s. Calls are read as JSON only: this tree has no
compiled ``agent.proto``, so a protobuf body is a 415. Any other call type answers 501 naming
it; a body that is not such a call, a 400 saying what is wrong.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web

from agent_runtime.codec import jsonpb
from agent_runtime.containerizer.containerizer import Containerizer
from agent_runtime.errors import BadRequest, NotImplementedCall, UnsupportedMediaType
from agent_runtime.http_util import JSON, request_media_type, require_post
from agent_runtime.proto import mesos_pb2

PruneImages = Callable[[Sequence[str]], Awaitable[object]]


def image_pruner(containerizer: Containerizer) -> PruneImages:
    """The containerizer's ``prune_images`` (Mesos's pruneImages): only the Mesos containerizer
    keeps an image store, and without one there is nothing to prune, as in Mesos."""
    return containerizer.prune_images


def excluded_images(call: dict[str, Any]) -> list[str]:
    """The DOCKER names in ``prune_images.excluded_images`` (Mesos ``Image`` objects)."""
    params = call.get("prune_images", {})
    if not isinstance(params, dict):
        raise BadRequest("'prune_images' must be a JSON object")
    images = params.get("excluded_images", [])
    if not isinstance(images, list):
        raise BadRequest("'prune_images.excluded_images' must be a JSON array of images")
    names = []
    for index, item in enumerate(images):
        where = f"prune_images.excluded_images[{index}]"
        try:
            image = jsonpb.parse_dict(item, mesos_pb2.Image)
        except BadRequest as exc:
            raise BadRequest(f"{where}: {exc}") from exc
        if image.type == mesos_pb2.Image.APPC:
            continue  # never in this agent's store
        if not image.docker.name:
            raise BadRequest(f"{where}: a DOCKER image needs docker.name")
        names.append(image.docker.name)
    return names


class OperatorAPI:
    def __init__(self, prune_images: PruneImages | None) -> None:
        self.prune = prune_images
        self._calls: dict[str, Callable[[dict[str, Any]], Awaitable[web.Response]]] = {
            "PRUNE_IMAGES": self._prune_images,
        }

    async def handle(self, request: web.Request) -> web.Response:
        require_post(request)
        if request_media_type(request) != JSON:
            raise UnsupportedMediaType(f"Agent calls are taken as {JSON} only")
        call = jsonpb.loads_json(await request.read())
        if not isinstance(call, dict):
            raise BadRequest("Expecting a JSON object (an agent Call)")
        kind = call.get("type")
        if not isinstance(kind, str) or kind in ("", "UNKNOWN"):
            raise BadRequest("Expecting 'type' to be present")
        handler = self._calls.get(kind)
        if handler is None:
            raise NotImplementedCall(f"Call {kind} is not implemented by this agent (it "
                                     f"answers {', '.join(self._calls)})")
        return await handler(call)

    async def _prune_images(self, call: dict[str, Any]) -> web.Response:
        excluded = excluded_images(call)
        if self.prune is not None:  # no image store: nothing to prune, as in Mesos
            await self.prune(excluded)
        return web.Response(status=200)
