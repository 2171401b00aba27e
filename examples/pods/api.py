"""The pod framework's HTTP API on loopback: submit a pod (POST /pods, JSON or YAML), list
pods (GET /pods), one pod (GET /pods/{name}). Bad specs get a 400 naming the field; bodies
are capped before they are read whole."""

from __future__ import annotations

from aiohttp import web

from examples.pods.framework import PodFramework
from examples.pods.spec import MAX_SPEC_BYTES, SpecError, parse_pod


def application(framework: PodFramework) -> web.Application:
    app = web.Application(client_max_size=MAX_SPEC_BYTES)

    async def submit(request: web.Request) -> web.Response:
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return web.json_response({"error": f"pod spec over {MAX_SPEC_BYTES} bytes"},
                                     status=413)
        try:
            pod = await framework.submit(parse_pod(body, request.content_type))
        except SpecError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(pod.as_json(), status=201)

    async def listing(request: web.Request) -> web.Response:
        return web.json_response({"pods": [p.as_json() for p in framework.pods.values()],
                                  "nodes": sorted(framework.cache.nodes.nodes)})

    async def one(request: web.Request) -> web.Response:
        pod = framework.pods.get(request.match_info["name"])
        if pod is None:
            return web.json_response({"error": "no such pod"}, status=404)
        return web.json_response(pod.as_json())

    app.router.add_post("/pods", submit)
    app.router.add_get("/pods", listing)
    app.router.add_get("/pods/{name}", one)
    return app


__all__ = ["application"]
