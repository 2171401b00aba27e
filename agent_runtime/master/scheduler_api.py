"""``POST /api/v1/scheduler``: the Mesos v1 scheduler HTTP API."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Literal

from aiohttp import web

from agent_runtime.errors import BadRequest, NotImplementedCall
from agent_runtime.http_util import (
    read_message,
    request_media_type,
    require_post,
    response_media_type,
)
from agent_runtime.master.master import Master
from agent_runtime.master.model import Framework
from agent_runtime.master.security import PARSED
from agent_runtime.proto import scheduler_pb2
from agent_runtime.streams import EventStream

Call = scheduler_pb2.Call
STREAM_HEADER = "Mesos-Stream-Id"
# The counter of each call type, named once rather than on every call.
_METRIC = {number: f"master/messages_{name.lower()}" for name, number in Call.Type.items()}
# The calls whose payload field must be present, by the field's name.
Payload = Literal["accept", "decline", "kill", "shutdown", "acknowledge", "message",
                  "accept_inverse_offers", "decline_inverse_offers"]


class SchedulerAPI:
    def __init__(self, master: Master) -> None:
        self.master = master
        launcher = master.launcher
        lifecycle = master.framework_lifecycle
        self._handlers: dict[int, Callable[[Framework, Call], Any]] = {
            Call.TEARDOWN: lambda f, c: lifecycle.remove(f),
            Call.ACCEPT: lambda f, c: launcher.accept(f, c.accept),
            Call.DECLINE: lambda f, c: launcher.decline(f, c.decline),
            Call.REVIVE: self._revive,
            Call.SUPPRESS: self._suppress,
            Call.KILL: lambda f, c: launcher.kill(f, c.kill),
            Call.SHUTDOWN: lambda f, c: launcher.shutdown(f, c.shutdown),
            Call.ACKNOWLEDGE: lambda f, c: launcher.acknowledge(f, c.acknowledge),
            Call.RECONCILE: lambda f, c: master.reconciler.reconcile(f, c.reconcile),
            Call.MESSAGE: lambda f, c: launcher.message(f, c.message),
            Call.REQUEST: lambda f, c: None,  # the built-in allocator ignores requests
            Call.ACCEPT_INVERSE_OFFERS: lambda f, c: master.maintenance.inverse.accept(
                f, c.accept_inverse_offers),
            Call.DECLINE_INVERSE_OFFERS: lambda f, c: master.maintenance.inverse.decline(
                f, c.decline_inverse_offers),
        }
        self._payload: dict[int, Payload] = {
            Call.ACCEPT: "accept", Call.DECLINE: "decline", Call.KILL: "kill",
            Call.SHUTDOWN: "shutdown", Call.ACKNOWLEDGE: "acknowledge", Call.MESSAGE: "message",
            Call.ACCEPT_INVERSE_OFFERS: "accept_inverse_offers",
            Call.DECLINE_INVERSE_OFFERS: "decline_inverse_offers",
        }

    async def handle(self, request: web.Request) -> web.StreamResponse:
        require_post(request)
        media = request_media_type(request)
        parsed = request.get(PARSED)
        call: Call = parsed[2] if parsed is not None and parsed[:2] == (Call, media) else \
            await read_message(request, Call, media)
        if not call.HasField("type") or call.type == Call.UNKNOWN:
            raise NotImplementedCall("Received an UNKNOWN or missing call type")
        if call.type == Call.SUBSCRIBE:
            return await self._subscribe(request, call)
        stream_id = request.headers.get(STREAM_HEADER)
        if stream_id is None:
            raise BadRequest(f"All non-subscribe calls should include the '{STREAM_HEADER}' header")
        if not call.HasField("framework_id"):
            raise BadRequest("Expecting 'framework_id' to be present")
        payload = self._payload.get(call.type)
        if payload is not None and not call.HasField(payload):
            raise BadRequest(f"Expecting '{payload}' to be present")
        handler = self._handlers.get(call.type)
        if handler is None:
            raise NotImplementedCall(f"Call {Call.Type.Name(call.type)} is not implemented")
        framework = self.master.framework_lifecycle.framework_for(call, stream_id)
        handler(framework, call)
        self.master.effects.count(_METRIC[call.type])
        return web.Response(status=202)

    async def _subscribe(self, request: web.Request, call: Call) -> web.StreamResponse:
        if STREAM_HEADER in request.headers:
            raise BadRequest(f"Subscribe calls should not include the '{STREAM_HEADER}' header")
        if not call.HasField("subscribe") or not call.subscribe.HasField("framework_info"):
            raise BadRequest("Expecting 'subscribe.framework_info' to be present")
        accept = response_media_type(request, strict=True)
        self.master.framework_lifecycle.validate(call.subscribe.framework_info)
        stream_id = str(uuid.uuid4())
        response = web.StreamResponse(status=200)
        response.content_type = accept
        response.headers[STREAM_HEADER] = stream_id
        response.enable_chunked_encoding()
        stream = EventStream(response, accept, stream_id)
        framework = self.master.framework_lifecycle.subscribe(call, stream)
        await response.prepare(request)
        try:
            await stream.pump()
        finally:
            self.master.framework_lifecycle.stream_closed(framework, stream)
        return response

    def _revive(self, framework: Framework, call: Call) -> None:
        roles = list(call.revive.roles) or None
        self.master.allocator.revive(framework.id, roles)
        framework.suppressed_roles -= set(roles or framework.roles)
        self.master.effects.allocate_soon()

    def _suppress(self, framework: Framework, call: Call) -> None:
        roles = list(call.suppress.roles) or None
        self.master.allocator.suppress(framework.id, roles)
        framework.suppressed_roles |= set(roles or framework.roles)
