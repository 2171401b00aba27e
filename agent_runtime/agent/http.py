"""The agent's HTTP server: the executor API, the operator API (``operator_api.py``), ``/state``,
container usage (``/monitor/statistics``, ``/containers``) and the sandbox file endpoints."""

from __future__ import annotations

import asyncio
import json
import mimetypes
import os
from typing import Any

from aiohttp import web

from agent_runtime.agent import files, metrics, prometheus, state_json
from agent_runtime.agent.agent import Agent
from agent_runtime.agent.executor_api import ExecutorAPI
from agent_runtime.agent.model import Executor
from agent_runtime.agent.operator_api import OperatorAPI, image_pruner
from agent_runtime.build_info import version_json
from agent_runtime.codec.jsonpb import to_dict
from agent_runtime.flags import as_strings
from agent_runtime.http_util import MAX_BODY, Handler, error_middleware, json_response
from agent_runtime.prometheus_text import CONTENT_TYPE
from agent_runtime.proto import mesos_pb2

DOWNLOAD_CHUNK = 64 * 1024


def make_app(agent: Agent) -> web.Application:
    executor_api = ExecutorAPI(agent)
    operator_api = OperatorAPI(agent, image_pruner(agent.containerizer))

    async def state(request: web.Request) -> web.Response:
        return json_response(state_json.state(agent), request)

    async def flags(request: web.Request) -> web.Response:
        return json_response({"flags": as_strings(agent.config)}, request)

    async def health(request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def version(request: web.Request) -> web.Response:
        return json_response(version_json(), request)

    async def snapshot(request: web.Request) -> web.Response:
        return json_response(metrics.snapshot(agent), request)

    async def prometheus_metrics(request: web.Request) -> web.Response:
        return web.Response(body=await prometheus.scrape(agent),
                            headers={"Content-Type": CONTENT_TYPE})

    async def browse(request: web.Request) -> web.Response:
        return json_response(
            files.browse(agent.config.work_dir, agent.id, request.query.get("path", "")), request
        )

    async def read(request: web.Request) -> web.Response:
        query = request.query
        data = files.read(agent.config.work_dir, agent.id, query.get("path", ""),
                          query.get("offset"), query.get("length"))
        return json_response(data, request)

    async def download(request: web.Request) -> web.StreamResponse:
        """The file as an attachment, read in chunks off the loop (Mesos's ``/files/download``)."""
        path = request.query.get("path", "")
        handle = files.open_regular(agent.config.work_dir, agent.id, path)
        try:
            name = os.path.basename(path.rstrip("/")) or "download"
            left = os.fstat(handle).st_size  # a log still growing is sent as it was now
            response = web.StreamResponse(headers={
                "Content-Type": mimetypes.guess_type(name)[0] or "application/octet-stream",
                "Content-Disposition": f"attachment; filename={json.dumps(name)}",
                "Content-Length": str(left),
            })
            await response.prepare(request)
            loop = asyncio.get_running_loop()
            while left > 0:
                chunk = await loop.run_in_executor(None, os.read, handle,
                                                   min(left, DOWNLOAD_CHUNK))
                if not chunk:
                    break  # truncated meanwhile: the client sees a short body
                left -= len(chunk)
                await response.write(chunk)
            await response.write_eof()
            return response
        finally:
            os.close(handle)

    async def usages(executors: list[Executor]) -> list[mesos_pb2.ResourceStatistics | None]:
        # Concurrent: a Docker container's figures are a round trip to the engine each.
        found = await asyncio.gather(
            *(agent.containerizer.usage(e.container_id) for e in executors))
        return [None if usage is None else state_json.with_allocation(usage, executor)
                for executor, usage in zip(executors, found, strict=True)]

    def identity(executor: Executor) -> dict[str, Any]:
        return {"executor_id": executor.id, "executor_name": executor.info.name,
                "framework_id": executor.framework_id, "source": executor.info.source}

    async def statistics(request: web.Request) -> web.Response:
        """Mesos's ResourceMonitor: containers whose usage cannot be told are left out."""
        executors = list(agent.table.executors())
        return json_response([
            {**identity(e), "statistics": to_dict(usage)}
            for e, usage in zip(executors, await usages(executors), strict=True)
            if usage is not None
        ], request)

    async def containers(request: web.Request) -> web.Response:
        """Every running container, filtered by the query's ``container_id``, ``framework_id``
        and ``executor_id``; ``statistics`` is absent when its usage cannot be told (Mesos)."""
        query = request.query
        executors = [
            e for e in agent.table.executors()
            if query.get("container_id", e.container_id) == e.container_id
            and query.get("framework_id", e.framework_id) == e.framework_id
            and query.get("executor_id", e.id) == e.id
        ]
        out = []
        for executor, usage in zip(executors, await usages(executors), strict=True):
            entry = {**identity(executor), "container_id": executor.container_id,
                     "status": to_dict(state_json.container_status(executor))}
            if usage is not None:
                entry["statistics"] = to_dict(usage)
            out.append(entry)
        return json_response(out, request)

    routes: dict[str, Handler] = {
        "/state": state,
        "/flags": flags,
        "/health": health,
        "/monitor/statistics": statistics,
        "/containers": containers,
    }
    gets: dict[str, Handler] = {
        "/state.json": state,
        "/slave(1)/state.json": state,
        "/monitor/statistics.json": statistics,
        "/version": version,
        "/metrics/snapshot": snapshot,
        "/metrics": prometheus_metrics,
        "/files/browse": browse,
        "/files/browse.json": browse,
        "/files/read": read,
        "/files/read.json": read,
        "/files/download": download,
        "/files/download.json": download,
    }
    for path, handler in routes.items():
        gets[path] = handler
        gets["/slave(1)" + path] = handler
    app = web.Application(middlewares=[error_middleware], client_max_size=MAX_BODY)
    # Mesos strips a trailing '/', so `/state/` is `/state`.
    for path, handler in gets.items():
        app.router.add_get(path, handler)
        app.router.add_get(path + "/", handler)
    for path in ("/api/v1/executor", "/slave(1)/api/v1/executor"):
        app.router.add_route("*", path, executor_api.handle)
        app.router.add_route("*", path + "/", executor_api.handle)
    for path in ("/api/v1", "/slave(1)/api/v1"):
        app.router.add_route("*", path, operator_api.handle)
        app.router.add_route("*", path + "/", operator_api.handle)
    return app
