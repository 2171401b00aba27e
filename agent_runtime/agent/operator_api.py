"""The agent's v1 operator API (``POST /api/v1``), JSON or protobuf, with Mesos's call names.

State: GET_HEALTH, GET_FLAGS, GET_VERSION, GET_METRICS, GET_STATE, GET_CONTAINERS,
GET_FRAMEWORKS, GET_EXECUTORS, GET_TASKS, GET_AGENT, GET_OPERATIONS (none: no resource
providers), GET/SET_LOGGING_LEVEL; sandbox files: LIST_FILES, READ_FILE (the paths ``/files``
takes, through the same confinement); images: PRUNE_IMAGES; nested container sessions (what
``mesos task exec`` uses): LAUNCH_NESTED_CONTAINER_SESSION, ATTACH_CONTAINER_INPUT/OUTPUT
(``operator_streams.py``), WAIT_CONTAINER / WAIT_NESTED_CONTAINER, KILL_CONTAINER /
KILL_NESTED_CONTAINER for those sessions. Other calls (standalone containers, resource
providers) answer 501 naming the call; a bad body is a 400 saying what is wrong.

The route sits with the agent's others, so the HTTP authentication middleware covers it;
the session calls are also authorized by action (Mesos's ACL names) for ``--acls``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

from agent_runtime.agent import files
from agent_runtime.agent import operator_state as state
from agent_runtime.agent.agent import Agent
from agent_runtime.agent.nested import NestedContainers
from agent_runtime.agent.operator_streams import RECORDIO, OperatorStreams
from agent_runtime.agent.sandbox_acl import sandbox_user
from agent_runtime.auth.http_auth import authorize
from agent_runtime.containerizer.containerizer import Containerizer
from agent_runtime.errors import BadRequest, NotImplementedCall, UnsupportedMediaType
from agent_runtime.http_util import (
    encode,
    read_message,
    request_media_type,
    require_post,
    response_media_type,
)
from agent_runtime.proto import agent_pb2, mesos_pb2

Call = agent_pb2.Call
Response = agent_pb2.Response
PruneImages = Callable[[Sequence[str]], Awaitable[object]]
Handler = Callable[[Call, web.Request], Awaitable[Response | None]]
MAX_READ = files.MAX_READ


def image_pruner(containerizer: Containerizer) -> PruneImages:
    """The containerizer's ``prune_images`` (Mesos's pruneImages): only the Mesos containerizer
    keeps an image store, and without one there is nothing to prune, as in Mesos."""
    return containerizer.prune_images


def excluded_images(call: Call) -> list[str]:
    """The DOCKER names in ``prune_images.excluded_images``."""
    names = []
    for index, image in enumerate(call.prune_images.excluded_images):
        if image.type == mesos_pb2.Image.APPC:
            continue  # never in this agent's store
        if not image.docker.name:
            raise BadRequest(f"prune_images.excluded_images[{index}]: a DOCKER image needs "
                             "docker.name")
        names.append(image.docker.name)
    return names


def wait_status(status: int) -> int:
    """An executor's exit as the launcher reports it (code, or minus the signal) as wait(2)."""
    return -status if status < 0 else (status & 0xFF) << 8


class OperatorAPI:
    def __init__(self, agent: Agent, prune_images: PruneImages | None = None) -> None:
        self.agent = agent
        self.prune = prune_images
        self.nested = NestedContainers(agent)
        self.streams = OperatorStreams(agent, self.nested)
        self._revert: asyncio.TimerHandle | None = None
        self._original = logging.NOTSET

        def answer(kind: Response.Type.ValueType, build: Callable[[Response], None]
                   ) -> Handler:
            async def handler(call: Call, request: web.Request) -> Response:
                response = Response(type=kind)
                build(response)
                return response
            return handler

        self._calls: dict[int, Handler] = {
            Call.GET_HEALTH: answer(Response.GET_HEALTH,
                                    lambda r: setattr(r.get_health, "healthy", True)),
            Call.GET_VERSION: answer(Response.GET_VERSION,
                                     lambda r: r.get_version.CopyFrom(state.get_version())),
            Call.GET_METRICS: answer(Response.GET_METRICS,
                                     lambda r: r.get_metrics.CopyFrom(state.get_metrics(agent))),
            Call.GET_STATE: answer(Response.GET_STATE,
                                   lambda r: r.get_state.CopyFrom(state.get_state(agent))),
            Call.GET_FRAMEWORKS: answer(
                Response.GET_FRAMEWORKS,
                lambda r: r.get_frameworks.CopyFrom(state.get_frameworks(agent))),
            Call.GET_EXECUTORS: answer(
                Response.GET_EXECUTORS,
                lambda r: r.get_executors.CopyFrom(state.get_executors(agent))),
            Call.GET_TASKS: answer(Response.GET_TASKS,
                                   lambda r: r.get_tasks.CopyFrom(state.get_tasks(agent))),
            Call.GET_AGENT: answer(Response.GET_AGENT,
                                   lambda r: r.get_agent.CopyFrom(state.get_agent(agent))),
            Call.GET_OPERATIONS: answer(Response.GET_OPERATIONS,
                                        lambda r: r.get_operations.SetInParent()),
            Call.GET_FLAGS: self._get_flags,
            Call.GET_CONTAINERS: self._get_containers,
            Call.GET_LOGGING_LEVEL: self._get_logging_level,
            Call.SET_LOGGING_LEVEL: self._set_logging_level,
            Call.LIST_FILES: self._list_files,
            Call.READ_FILE: self._read_file,
            Call.PRUNE_IMAGES: self._prune_images,
            Call.WAIT_CONTAINER: self._wait,
            Call.WAIT_NESTED_CONTAINER: self._wait,
            Call.KILL_CONTAINER: self._kill,
            Call.KILL_NESTED_CONTAINER: self._kill,
        }

    async def handle(self, request: web.Request) -> web.StreamResponse:
        require_post(request)
        content = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content == RECORDIO:
            return await self.streams.attach_input(request)
        call: Call = await read_message(request, Call, request_media_type(request))
        if not call.HasField("type") or call.type == Call.UNKNOWN:
            raise BadRequest("Expecting 'type' to be present")
        if call.type == Call.LAUNCH_NESTED_CONTAINER_SESSION:
            return await self.streams.launch_session(request, call)
        if call.type == Call.ATTACH_CONTAINER_OUTPUT:
            return await self.streams.attach_output(request, call)
        if call.type == Call.ATTACH_CONTAINER_INPUT:
            raise UnsupportedMediaType(f"ATTACH_CONTAINER_INPUT is a stream: expecting "
                                       f"'Content-Type: {RECORDIO}'")
        handler = self._calls.get(call.type)
        if handler is None:
            raise NotImplementedCall(f"Call {Call.Type.Name(call.type)} is not implemented "
                                     "by this agent")
        accept = response_media_type(request, strict=True)
        response = await handler(call, request)
        if response is None:
            return web.Response(status=200)
        return web.Response(body=encode(response, accept), content_type=accept)

    async def _get_flags(self, call: Call, request: web.Request) -> Response:
        authorize(request, "view_flags")
        response = Response(type=Response.GET_FLAGS)
        response.get_flags.CopyFrom(state.get_flags(self.agent))
        return response

    async def _get_containers(self, call: Call, request: web.Request) -> Response:
        response = Response(type=Response.GET_CONTAINERS)
        response.get_containers.CopyFrom(await state.get_containers(
            self.agent, call.get_containers.show_nested, self.nested.containers()))
        return response

    # Logging ---------------------------------------------------------------------------------
    async def _get_logging_level(self, call: Call, request: web.Request) -> Response:
        # glog's verbosity: 0 is our INFO, 1 and above our DEBUG.
        response = Response(type=Response.GET_LOGGING_LEVEL)
        debug = logging.getLogger().getEffectiveLevel() <= logging.DEBUG
        response.get_logging_level.level = 1 if debug else 0
        return response

    async def _set_logging_level(self, call: Call, request: web.Request) -> None:
        params = call.set_logging_level
        if not params.HasField("level") or not params.HasField("duration"):
            raise BadRequest("Expecting 'set_logging_level.level' and '.duration'")
        seconds = params.duration.nanoseconds / 1e9
        if not 0 < seconds < 365 * 86400:
            raise BadRequest("'set_logging_level.duration' must be positive and under a year")
        authorize(request, "set_log_level")
        root = logging.getLogger()
        if self._revert is None:
            self._original = root.level
        else:
            self._revert.cancel()
        root.setLevel(logging.DEBUG if params.level >= 1 else logging.INFO)

        def revert() -> None:
            root.setLevel(self._original)
            self._revert = None

        # As Mesos: the level holds for `duration`, then the original comes back.
        self._revert = asyncio.get_running_loop().call_later(seconds, revert)

    # Sandbox files ---------------------------------------------------------------------------
    def _owner(self, path: str) -> str | None:
        return sandbox_user(self.agent.table, self.agent.config.work_dir, self.agent.id, path)

    async def _list_files(self, call: Call, request: web.Request) -> Response:
        authorize(request, "access_sandboxes", self._owner(call.list_files.path))
        response = Response(type=Response.LIST_FILES)
        found = files.entries(self.agent.config.work_dir, self.agent.id, call.list_files.path)
        for path, st in found:
            info = response.list_files.file_infos.add(
                path=path, nlink=st.st_nlink, size=st.st_size, mode=st.st_mode,
                uid=str(st.st_uid), gid=str(st.st_gid))
            info.mtime.nanoseconds = int(st.st_mtime * 1e9)
        return response

    async def _read_file(self, call: Call, request: web.Request) -> Response:
        authorize(request, "access_sandboxes", self._owner(call.read_file.path))
        params = call.read_file
        wanted = min(params.length, MAX_READ) if params.HasField("length") else MAX_READ
        handle = files.open_regular(self.agent.config.work_dir, self.agent.id, params.path)
        try:
            size = os.fstat(handle).st_size
            data = os.pread(handle, wanted, params.offset) if params.offset < size else b""
        finally:
            os.close(handle)
        response = Response(type=Response.READ_FILE)
        response.read_file.size = size
        response.read_file.data = data
        return response

    # Images ----------------------------------------------------------------------------------
    async def _prune_images(self, call: Call, request: web.Request) -> None:
        excluded = excluded_images(call)
        authorize(request, "prune_images")
        if self.prune is not None:  # no image store: nothing to prune, as in Mesos
            await self.prune(excluded)

    # Nested containers -----------------------------------------------------------------------
    async def _wait(self, call: Call, request: web.Request) -> Response:
        legacy = call.type == Call.WAIT_NESTED_CONTAINER
        field = "wait_nested_container" if legacy else "wait_container"
        params = call.wait_nested_container if legacy else call.wait_container
        authorize(request, "wait_nested_containers")
        container_id = params.container_id
        if not legacy and not container_id.HasField("parent") and container_id.value:
            # A task's own container: its executor's exit.
            executor = self.nested.parent(container_id.value)
            assert executor.process is not None
            status = wait_status(await asyncio.shield(executor.process.exited))
        else:
            nested = self.nested.find(self.nested.key(container_id, f"{field}.container_id"))
            status = await asyncio.shield(nested.status)
        response = Response(type=Response.WAIT_NESTED_CONTAINER if legacy
                            else Response.WAIT_CONTAINER)
        (response.wait_nested_container if legacy else response.wait_container
         ).exit_status = status
        return response

    async def _kill(self, call: Call, request: web.Request) -> None:
        legacy = call.type == Call.KILL_NESTED_CONTAINER
        field = "kill_nested_container" if legacy else "kill_container"
        params = call.kill_nested_container if legacy else call.kill_container
        signum = params.signal if params.HasField("signal") else signal.SIGKILL
        if not 0 < signum < signal.NSIG:
            raise BadRequest(f"'{field}.signal' must be a signal number, not {signum}")
        authorize(request, "kill_nested_containers")
        await self.nested.kill(self.nested.key(params.container_id, f"{field}.container_id"),
                               signum)


__all__ = ["OperatorAPI", "excluded_images", "image_pruner", "wait_status"]
