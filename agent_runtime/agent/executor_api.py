"""``POST /api/v1/executor``: the Mesos v1 executor HTTP API, served by the agent."""

from __future__ import annotations

import asyncio
import uuid

from aiohttp import web

from agent_runtime.agent.agent import Agent
from agent_runtime.agent.model import Executor, ExecutorState
from agent_runtime.errors import BadRequest, Forbidden, NotImplementedCall, Unauthorized
from agent_runtime.http_util import (
    read_message,
    request_media_type,
    require_post,
    response_media_type,
)
from agent_runtime.proto import executor_pb2
from agent_runtime.streams import EventStream

Call = executor_pb2.Call


class ExecutorAPI:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def _executor(self, call: Call) -> Executor:
        if not call.HasField("framework_id") or not call.HasField("executor_id"):
            raise BadRequest("Expecting 'framework_id' and 'executor_id' to be present")
        table = self.agent.table
        if table.framework(call.framework_id.value) is None:
            raise BadRequest(f"Framework {call.framework_id.value} cannot be found")
        executor = table.executor(call.framework_id.value, call.executor_id.value)
        if executor is None:
            raise BadRequest(f"Executor {call.executor_id.value} cannot be found")
        return executor

    async def handle(self, request: web.Request) -> web.StreamResponse:
        require_post(request)
        media = request_media_type(request)
        call: Call = await read_message(request, Call, media)
        if not call.HasField("type") or call.type == Call.UNKNOWN:
            raise NotImplementedCall("Received an UNKNOWN or missing call type")
        if not call.HasField("framework_id") or not call.HasField("executor_id"):
            raise BadRequest("Expecting 'framework_id' and 'executor_id' to be present")
        tokens = self.agent.environment.tokens
        if tokens is None:
            executor = self._executor(call)
        else:
            # Who is calling, before anything of the call is believed (or any id looked up):
            # only the executor the token was made for, in the container it was made for.
            try:
                claims = tokens.verify(request.headers.get("Authorization"))
            except Unauthorized as exc:
                raise web.HTTPUnauthorized(text=str(exc), headers={
                    "WWW-Authenticate": 'Bearer realm="mesos-agent-executor"'}) from exc
            tokens.check(claims, claims.container_id, call.framework_id.value,
                         call.executor_id.value)
            executor = self._executor(call)
            tokens.check(claims, executor.container_id, executor.framework_id, executor.id)
        if call.type == Call.SUBSCRIBE:
            return await self._subscribe(request, call, executor)
        if executor.stream is None:
            raise Forbidden("Executor is not subscribed")
        if call.type == Call.UPDATE:
            if not call.HasField("update"):
                raise BadRequest("Expecting 'update' to be present")
            checkpointed = self.agent.executor_update(executor, call.update.status)
            if checkpointed is not None:
                # Answered once on disk. Shielded: the future is shared, and a caller that
                # goes away must not cancel it for the others.
                await asyncio.shield(checkpointed)
        elif call.type == Call.MESSAGE:
            if not call.message.HasField("data"):
                raise BadRequest("Expecting 'message.data' to be present")
            self.agent.executor_message(executor, call.message.data)
        elif call.type != Call.HEARTBEAT:
            raise NotImplementedCall(f"Call {Call.Type.Name(call.type)} is not implemented")
        return web.Response(status=202)

    async def _subscribe(self, request: web.Request, call: Call, executor: Executor
                         ) -> web.StreamResponse:
        accept = response_media_type(request, strict=True)
        if executor.state in (ExecutorState.TERMINATING, ExecutorState.TERMINATED):
            raise Forbidden("Executor is shutting down")
        response = web.StreamResponse(status=200)
        response.content_type = accept
        response.enable_chunked_encoding()
        stream = EventStream(response, accept, str(uuid.uuid4()))
        self.agent.executor_subscribed(executor, call.subscribe, stream)
        await response.prepare(request)
        try:
            await stream.pump()
        finally:
            self.agent.executor_disconnected(executor, stream)
        return response
