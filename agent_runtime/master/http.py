"""The master's HTTP server: the scheduler API and the operator's read-only endpoints."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from agent_runtime.auth.http_auth import AUTH_KEY, auth_middleware
from agent_runtime.errors import BadRequest, ServiceUnavailable
from agent_runtime.flags import as_strings
from agent_runtime.http_util import (
    MAX_BODY,
    Handler,
    delegate_aliases,
    error_middleware,
    json_response,
)
from agent_runtime.master import security, state_json
from agent_runtime.master.master import Master
from agent_runtime.master.operator_http import OperatorHTTP
from agent_runtime.master.scheduler_api import SchedulerAPI
from agent_runtime.master.webui import WebUI

# What a standby master (--zk, not elected) still answers itself; the rest goes to the leader.
STANDBY_LOCAL = frozenset({"/health", "/master/health", "/version", "/metrics/snapshot",
                           "/flags", "/master/flags"})


def _standby_middleware(master: Master) -> Any:
    @web.middleware
    async def standby(request: web.Request, handler: Handler) -> web.StreamResponse:
        if master.leading or request.path.rstrip("/") in STANDBY_LOCAL:
            return await handler(request)
        if master.leader is None:
            raise ServiceUnavailable("No master is currently leading")
        # As Mesos: 307 to the same path on the leader, as a network-path reference.
        raise web.HTTPTemporaryRedirect(f"//{master.leader}{request.path_qs}")

    return standby


def make_app(master: Master) -> web.Application:
    scheduler = SchedulerAPI(master)

    async def state(request: web.Request) -> web.Response:
        return json_response(state_json.state_json(master), request)

    async def frameworks(request: web.Request) -> web.Response:
        data = state_json.frameworks_json(master, request.query.get("framework_id"))
        return json_response(data, request)

    async def slaves(request: web.Request) -> web.Response:
        return json_response(state_json.slaves_json(master, request.query.get("slave_id")),
                             request)

    async def tasks(request: web.Request) -> web.Response:
        return json_response(state_json.tasks_json(master, request.query), request)

    async def roles(request: web.Request) -> web.Response:
        return json_response(state_json.roles_json(master), request)

    async def flags(request: web.Request) -> web.Response:
        return json_response({"flags": as_strings(master.config)}, request)

    async def health(request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def version(request: web.Request) -> web.Response:
        return json_response(state_json.version_json(), request)

    async def metrics(request: web.Request) -> web.Response:
        return json_response(state_json.metrics_json(master), request)

    async def agent_link(request: web.Request) -> web.Response:
        # Internal: tells agents where the gRPC agent link listens.
        return json_response({"port": request.app["link_port"], "master_id": master.id})

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(f"//{master.info.hostname}:{master.info.port}")

    async def teardown(request: web.Request) -> web.Response:
        if request.method != "POST":
            raise web.HTTPMethodNotAllowed(request.method, ["POST"])
        form = await request.post()
        framework_id = form.get("frameworkId")
        if not isinstance(framework_id, str) or not framework_id:
            raise BadRequest("Missing 'frameworkId' query parameter in the request body")
        framework = master.book.frameworks.get(framework_id)
        if framework is None:
            raise BadRequest(f"No framework found with specified ID '{framework_id}'")
        master.framework_lifecycle.remove(framework)
        return web.Response(status=200)

    routes: dict[str, Handler] = {
        "/master/state": state,
        "/master/frameworks": frameworks,
        "/master/slaves": slaves,
        "/master/tasks": tasks,
        "/master/roles": roles,
        "/master/flags": flags,
        "/master/health": health,
        "/master/redirect": redirect,
        "/master/agent_link": agent_link,
        "/health": health,
        "/version": version,
        "/metrics/snapshot": metrics,
    }
    auth = security.http_auth_config(master.config)
    app = web.Application(middlewares=[error_middleware, _standby_middleware(master),
                                       auth_middleware(auth),
                                       security.MasterGuard(master, auth).middleware()],
                          client_max_size=MAX_BODY)
    app[AUTH_KEY] = auth
    # Mesos strips a trailing '/', so `/master/state/` is `/master/state`.
    for path, handler in delegate_aliases(routes, "/master").items():
        app.router.add_get(path, handler)
        app.router.add_get(path + "/", handler)
    for path in ("/master/teardown", "/teardown"):
        app.router.add_route("*", path, teardown)
        app.router.add_route("*", path + "/", teardown)
    for path in ("/api/v1/scheduler", "/master/api/v1/scheduler"):
        app.router.add_route("*", path, scheduler.handle)
        app.router.add_route("*", path + "/", scheduler.handle)
    for (method, path), handler in OperatorHTTP(master).routes().items():
        app.router.add_route(method, path, handler)
    WebUI(master).install(app)  # the operators' web UI at '/', behind the same middlewares
    return app
