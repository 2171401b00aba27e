"""The operator's endpoints for sharing the cluster: the v1 operator API (``POST /api/v1``) and
the legacy ``/master/reserve``, ``/master/unreserve``, ``/quota`` and ``/weights``.

The principal of a request (recorded as a reservation's or a quota's) is the one
``auth/http_auth.py`` authenticated; see there for the rules without ``--credentials``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from aiohttp import web

from agent_runtime import __version__
from agent_runtime.auth.http_auth import PRINCIPAL, principal
from agent_runtime.codec import jsonpb
from agent_runtime.errors import BadRequest, MethodNotAllowed, NotImplementedCall
from agent_runtime.flags import as_strings
from agent_runtime.http_util import (
    Handler,
    encode,
    json_response,
    read_message,
    request_media_type,
    require_post,
    response_media_type,
)
from agent_runtime.master import operator_legacy, state_wire
from agent_runtime.master.master import Master
from agent_runtime.master.operator_calls import OperatorCalls
from agent_runtime.master.operator_feed import OperatorFeed
from agent_runtime.proto import master_pb2, mesos_pb2, quota_pb2
from agent_runtime.resources import Resources

Call = master_pb2.Call
Response = master_pb2.Response


def principal_of(request: web.Request) -> str | None:
    if PRINCIPAL in request:  # authenticated (or knowingly unverified) by auth/http_auth.py
        return principal(request)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        user, _, _ = base64.b64decode(token.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise BadRequest(f"Malformed 'Authorization' header: {exc}") from exc
    return user or None


def _resources_json(text: str, field: str) -> Resources:
    try:
        items = jsonpb.loads_json(text)
    except BadRequest as exc:
        raise BadRequest(f"Failed to parse '{field}': {exc}") from exc
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        raise BadRequest(f"'{field}' must be a JSON array of resources")
    return Resources.from_proto(
        jsonpb.parse_dict(item, mesos_pb2.Resource) for item in items
    )


class OperatorHTTP:
    def __init__(self, master: Master) -> None:
        self.master = master
        self._calls: dict[int, Callable[[Call, str | None], Response | None]] = {
            Call.GET_HEALTH: self._health,
            Call.GET_FLAGS: self._flags,
            Call.GET_VERSION: self._version,
            Call.GET_MASTER: self._master,
            Call.GET_WEIGHTS: self._get_weights,
            Call.UPDATE_WEIGHTS: lambda c, p: master.quota.update_weights(
                c.update_weights.weight_infos),
            Call.GET_QUOTA: self._get_quota,
            Call.SET_QUOTA: lambda c, p: master.quota.set_legacy(c.set_quota.quota_request, p),
            Call.REMOVE_QUOTA: lambda c, p: master.quota.remove(c.remove_quota.role),
            Call.UPDATE_QUOTA: lambda c, p: master.quota.update(
                c.update_quota.quota_configs, c.update_quota.force, p),
            Call.RESERVE_RESOURCES: self._reserve,
            Call.UNRESERVE_RESOURCES: self._unreserve,
            Call.TEARDOWN: self._teardown,
        }
        # State, logging, files, maintenance and agent control; SUBSCRIBE is the event feed.
        self._calls.update(OperatorCalls(master).calls())
        self.feed = OperatorFeed(master)

    def routes(self) -> dict[tuple[str, str], Handler]:
        routes: dict[tuple[str, str], Handler] = {}
        for prefix in ("", "/master"):
            routes[("POST", prefix + "/api/v1")] = self.api
            routes[("POST", prefix + "/reserve")] = self.reserve
            routes[("POST", prefix + "/unreserve")] = self.unreserve
            routes[("*", prefix + "/quota")] = self.quota
            routes[("DELETE", prefix + "/quota/{role:.+}")] = self.remove_quota
            routes[("*", prefix + "/weights")] = self.weights
        routes.update(operator_legacy.routes(self.master))
        return routes

    # v1 operator API --------------------------------------------------------------------------
    async def api(self, request: web.Request) -> web.StreamResponse:
        require_post(request)
        media = request_media_type(request)
        accept = response_media_type(request, strict=True)
        call: Call = await read_message(request, Call, media)
        if not call.HasField("type") or call.type == Call.UNKNOWN:
            raise BadRequest("Expecting 'type' to be present")
        if call.type == Call.SUBSCRIBE:
            return await self.feed.subscribe(request, accept)
        spliced = state_wire.SPLICED.get(call.type)
        if spliced is not None:  # the big answers, joined from kept encodings (state_wire.py)
            return web.Response(body=spliced(self.master, accept), content_type=accept)
        handler = self._calls.get(call.type)
        if handler is None:
            raise NotImplementedCall(f"Call {Call.Type.Name(call.type)} is not implemented")
        response = handler(call, principal_of(request))
        if response is None:
            # Calls that change state answer without a body: 202 for reservations, else 200.
            accepted = call.type in (Call.RESERVE_RESOURCES, Call.UNRESERVE_RESOURCES)
            return web.Response(status=202 if accepted else 200)
        return web.Response(body=encode(response, accept), content_type=accept)

    def _health(self, call: Call, principal: str | None) -> Response:
        response = Response(type=Response.GET_HEALTH)
        response.get_health.healthy = True
        return response

    def _flags(self, call: Call, principal: str | None) -> Response:
        response = Response(type=Response.GET_FLAGS)
        for name, value in sorted(as_strings(self.master.config).items()):
            response.get_flags.flags.add(name=name, value=value)
        return response

    def _version(self, call: Call, principal: str | None) -> Response:
        response = Response(type=Response.GET_VERSION)
        response.get_version.version_info.version = __version__
        return response

    def _master(self, call: Call, principal: str | None) -> Response:
        response = Response(type=Response.GET_MASTER)
        response.get_master.master_info.CopyFrom(self.master.info)
        return response

    def _get_weights(self, call: Call, principal: str | None) -> Response:
        response = Response(type=Response.GET_WEIGHTS)
        response.get_weights.weight_infos.extend(self.master.quota.weights())
        return response

    def _get_quota(self, call: Call, principal: str | None) -> Response:
        response = Response(type=Response.GET_QUOTA)
        response.get_quota.status.CopyFrom(self.master.quota.status())
        return response

    def _reserve(self, call: Call, principal: str | None) -> None:
        reserve = call.reserve_resources
        if not reserve.HasField("agent_id"):
            raise BadRequest("Expecting 'reserve_resources.agent_id' to be present")
        self.master.reservations.reserve(
            reserve.agent_id.value, Resources.from_proto(reserve.resources), principal)

    def _unreserve(self, call: Call, principal: str | None) -> None:
        unreserve = call.unreserve_resources
        if not unreserve.HasField("agent_id"):
            raise BadRequest("Expecting 'unreserve_resources.agent_id' to be present")
        self.master.reservations.unreserve(
            unreserve.agent_id.value, Resources.from_proto(unreserve.resources), principal)

    def _teardown(self, call: Call, principal: str | None) -> None:
        framework = self.master.book.frameworks.get(call.teardown.framework_id.value)
        if framework is None:
            raise BadRequest(f"No framework found with ID '{call.teardown.framework_id.value}'")
        self.master.framework_lifecycle.remove(framework)

    # Legacy endpoints -------------------------------------------------------------------------
    async def _form(self, request: web.Request) -> tuple[str, Resources]:
        form = await request.post()
        agent_id = form.get("slaveId")
        if not isinstance(agent_id, str) or not agent_id:
            raise BadRequest("Missing 'slaveId' query parameter in the request body")
        text = form.get("resources")
        if not isinstance(text, str) or not text:
            raise BadRequest("Missing 'resources' query parameter in the request body")
        return agent_id, _resources_json(text, "resources")

    async def reserve(self, request: web.Request) -> web.Response:
        agent_id, resources = await self._form(request)
        self.master.reservations.reserve(agent_id, resources, principal_of(request))
        return web.Response(status=202)

    async def unreserve(self, request: web.Request) -> web.Response:
        agent_id, resources = await self._form(request)
        self.master.reservations.unreserve(agent_id, resources, principal_of(request))
        return web.Response(status=202)

    async def quota(self, request: web.Request) -> web.Response:
        if request.method == "GET":
            return json_response(jsonpb.to_dict(self.master.quota.status()), request)
        if request.method != "POST":
            raise MethodNotAllowed(f"Expecting 'GET' or 'POST', received '{request.method}'")
        body = await request.read()
        quota_request = jsonpb.parse(body, quota_pb2.QuotaRequest)
        self.master.quota.set_legacy(quota_request, principal_of(request))
        return web.Response(status=200)

    async def remove_quota(self, request: web.Request) -> web.Response:
        self.master.quota.remove(request.match_info["role"])
        return web.Response(status=200)

    async def weights(self, request: web.Request) -> web.Response:
        if request.method == "GET":
            return json_response([jsonpb.to_dict(w) for w in self.master.quota.weights()],
                                 request)
        if request.method != "PUT":
            raise MethodNotAllowed(f"Expecting 'GET' or 'PUT', received '{request.method}'")
        data: Any = jsonpb.loads_json(await request.read())
        if not isinstance(data, list):
            raise BadRequest("Expecting a JSON array of weight infos")
        infos = [jsonpb.parse_dict(item, mesos_pb2.WeightInfo) for item in data]
        self.master.quota.update_weights(infos)
        return web.Response(status=200)


__all__ = ["OperatorHTTP", "principal_of"]
