"""The agent's streaming operator calls: LAUNCH_NESTED_CONTAINER_SESSION and
ATTACH_CONTAINER_OUTPUT answer a RecordIO stream of ProcessIO (``Accept: application/recordio``,
each record in ``Message-Accept``'s encoding); ATTACH_CONTAINER_INPUT is a RecordIO request
body (``Content-Type: application/recordio``, records in ``Message-Content-Type``): first the
CONTAINER_ID, then PROCESS_IO messages, answered 200 once the client ends it.

As Mesos's CLI expects: the launching connection carries the session's output and its break
kills the session; input may come over several connections in turn (the CLI opens a short one
first to test the way), and one that ends without an empty STDIN leaves the input open; input
for a session that has already ended is taken and dropped (the CLI sends it regardless).
A task's own container has no input to attach to (its tasks have no TTY); its output is its
sandbox's ``stdout`` and ``stderr`` from now on, until its executor ends (``mesos task attach
--no-stdin`` follows a task so). Its input is answered as Mesos answers it for a container
launched without an I/O switchboard: 500 with Mesos's message. That one 5xx is on purpose:
Mesos's CLI tests the input connection first and goes on past a 500 only, so any 4xx would stop
``task attach`` before it shows the task's output.
"""

from __future__ import annotations

import asyncio
import os
import signal

from aiohttp import web
from google.protobuf.message import DecodeError

from agent_runtime.agent import files
from agent_runtime.agent.agent import Agent
from agent_runtime.agent.nested import NestedContainer, NestedContainers, data, request_of
from agent_runtime.auth.http_auth import authorize
from agent_runtime.codec import jsonpb, recordio
from agent_runtime.containerizer.sessions import STDERR, STDOUT
from agent_runtime.errors import (
    BadRequest,
    Conflict,
    NotAcceptable,
    RuntimeErrorBase,
    UnsupportedMediaType,
)
from agent_runtime.http_util import JSON, PROTOBUF, encode
from agent_runtime.proto import agent_pb2

Call = agent_pb2.Call
ProcessIO = agent_pb2.ProcessIO
RECORDIO = "application/recordio"
NO_SWITCHBOARD = "I/O switchboard server was disabled for this container"


class NoSwitchboard(RuntimeErrorBase):
    """Input for a container launched without a TTY (Mesos's answer, word for word: its CLI
    compares the text)."""

    status = 500
FOLLOW_EVERY = 0.2
READ_SIZE = 64 * 1024


def _inner(request: web.Request, header: str) -> str:
    media = request.headers.get(header, JSON).split(";")[0].strip().lower()
    if media not in (JSON, PROTOBUF):
        raise (NotAcceptable if header == "Message-Accept" else UnsupportedMediaType)(
            f"Expecting '{header}' of {JSON} or {PROTOBUF}")
    return media


def output_media(request: web.Request) -> str:
    """The records' encoding of a streamed answer; 406 unless the client takes RecordIO."""
    accepted = [part.split(";")[0].strip().lower()
                for part in request.headers.get("Accept", "").split(",")]
    if RECORDIO not in accepted and "*/*" not in accepted:
        raise NotAcceptable(f"This call streams its answer: expecting 'Accept: {RECORDIO}'")
    return _inner(request, "Message-Accept")


class OperatorStreams:
    def __init__(self, agent: Agent, nested: NestedContainers) -> None:
        self.agent = agent
        self.nested = nested

    async def _stream(self, request: web.Request, media: str) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={
            "Content-Type": RECORDIO, "Message-Content-Type": media})
        response.enable_chunked_encoding()
        await response.prepare(request)
        return response

    async def launch_session(self, request: web.Request, call: Call) -> web.StreamResponse:
        media = output_media(request)
        params = call.launch_nested_container_session
        key = self.nested.key(params.container_id, "launch_nested_container_session.container_id")
        container = params.container if params.HasField("container") else None
        session_request = request_of(params.command, container)
        authorize(request, "launch_nested_container_sessions", session_request.user)
        nested = await self.nested.launch(key, session_request)
        queue = nested.subscribe()  # before the session's output is first read
        if container is not None and container.tty_info.HasField("window_size"):
            size = container.tty_info.window_size
            await nested.session.resize(size.rows & 0xFFFF, size.columns & 0xFFFF)
        ended = False
        try:
            response = await self._stream(request, media)
            while (message := await queue.get()) is not None:
                await response.write(recordio.encode(encode(message, media)))
            ended = True
            await response.write_eof()
            return response
        finally:
            nested.unsubscribe(queue)
            if not ended:  # the connection broke: as in Mesos, the session goes with it
                await self.nested.kill(key, signal.SIGKILL)

    async def attach_output(self, request: web.Request, call: Call) -> web.StreamResponse:
        media = output_media(request)
        container_id = call.attach_container_output.container_id
        authorize(request, "attach_containers_output")
        if not container_id.HasField("parent"):
            return await self._follow_sandbox(request, container_id.value, media)
        nested = self.nested.find(
            self.nested.key(container_id, "attach_container_output.container_id"))
        queue = nested.subscribe()
        try:
            response = await self._stream(request, media)
            while (message := await queue.get()) is not None:
                await response.write(recordio.encode(encode(message, media)))
            await response.write_eof()
            return response
        finally:
            nested.unsubscribe(queue)

    async def _follow_sandbox(self, request: web.Request, container_id: str,
                              media: str) -> web.StreamResponse:
        if not container_id:
            raise BadRequest("Expecting 'attach_container_output.container_id' to be present")
        executor = self.nested.parent(container_id)
        assert executor.process is not None
        handles = {}
        try:
            for kind, name in ((STDOUT, "stdout"), (STDERR, "stderr")):
                handle = files.open_regular(self.agent.config.work_dir, self.agent.id,
                                            os.path.join(executor.directory, name))
                handles[kind] = handle
                os.lseek(handle, 0, os.SEEK_END)  # from now on, as an attached terminal
            response = await self._stream(request, media)
            while True:
                done = executor.process.exited.done()
                for kind, handle in handles.items():
                    while chunk := os.read(handle, READ_SIZE):
                        await response.write(recordio.encode(encode(data(kind, chunk), media)))
                if done:
                    break
                await asyncio.wait([executor.process.exited], timeout=FOLLOW_EVERY)
            await response.write_eof()
            return response
        finally:
            for handle in handles.values():
                os.close(handle)

    async def attach_input(self, request: web.Request) -> web.Response:
        media = _inner(request, "Message-Content-Type")
        decoder = recordio.Decoder()
        records: list[bytes] = []
        nested = None
        try:
            while True:
                while not records:
                    chunk = await request.content.readany()
                    if not chunk:
                        if nested is None:
                            raise BadRequest("Expecting an ATTACH_CONTAINER_INPUT call "
                                             "naming the container first")
                        return web.Response(status=200)
                    records.extend(decoder.feed(chunk))
                call = self._parse(records.pop(0), media)
                params = call.attach_container_input
                if nested is None:
                    nested = self._first(request, call)
                    if nested.status.done():
                        # Ended: nothing reads the input; take the call, as Mesos's CLI expects.
                        return web.Response(status=200)
                    nested.input_attached = True
                    continue
                if params.type != Call.AttachContainerInput.PROCESS_IO:
                    raise BadRequest("Expecting PROCESS_IO messages after the CONTAINER_ID")
                await self.nested.feed(nested, params.process_io)
        finally:
            if nested is not None:
                nested.input_attached = False

    @staticmethod
    def _parse(record: bytes, media: str) -> Call:
        if media == JSON:
            call = jsonpb.parse(record, Call)
        else:
            call = Call()
            try:
                call.ParseFromString(record)
            except DecodeError as exc:
                raise BadRequest(f"Failed to parse a record into a Call: {exc}") from exc
        if call.type != Call.ATTACH_CONTAINER_INPUT:
            raise BadRequest("Every record must be an ATTACH_CONTAINER_INPUT call")
        return call

    def _first(self, request: web.Request, call: Call) -> NestedContainer:
        params = call.attach_container_input
        if params.type != Call.AttachContainerInput.CONTAINER_ID:
            raise BadRequest("The first ATTACH_CONTAINER_INPUT must be of type CONTAINER_ID")
        authorize(request, "attach_containers_input")
        if not params.container_id.HasField("parent"):
            self.nested.parent(params.container_id.value)  # 404 when there is no such one
            raise NoSwitchboard(NO_SWITCHBOARD)
        nested = self.nested.find(
            self.nested.key(params.container_id, "attach_container_input.container_id"))
        if nested.input_attached:
            raise Conflict("Another input stream is attached to this container")
        return nested


__all__ = ["RECORDIO", "OperatorStreams", "output_media"]
