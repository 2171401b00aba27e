"""The master's own web UI: ``/`` serves the page, ``/ui/static/`` its files, and
``/ui/agents/<agent_id>/files/{browse,read}`` relays the sandbox browser's reads to that agent.

The page lives in ``agent_runtime/webui/`` (plain ES modules and the vendored libraries that
``webui-src/build.mjs`` copies there), so nothing needs Node at run time. It reads everything
else from the endpoints operators already have: the operator event stream and calls on
``/api/v1``, ``/master/roles``. Every route here sits behind the same authentication
middleware as the rest of the master, and the page only fetches its own origin, so the
credentials a browser holds for the master are the ones it sends.

Why a relay for sandboxes: the agents listen on other origins, which a page cannot read without
CORS (and the credentials a browser holds for the master are not sent there). The relay is kept
narrow because its caller may be a stranger: only agents the master has registered, only the
two read-only file calls, only the ``path``/``offset``/``length`` parameters (checked here and
rebuilt, never passed through), a bounded answer and a deadline. The caller's ``Authorization``
header goes along, so an agent with authentication on decides as it would for a direct call,
only to an agent whose link authenticated with a credential the master checked
(``--authenticate_agents``): anything may register as an agent otherwise, and an operator's
password must not reach whatever did.
"""

from __future__ import annotations

import os
from importlib import resources

import aiohttp
from aiohttp import web

from agent_runtime.errors import BadRequest, NotFound, ServiceUnavailable
from agent_runtime.http_util import Handler
from agent_runtime.master.master import Master

STATIC_PREFIX = "/ui/static"
FILE_CALLS = frozenset({"browse", "read"})
MAX_PATH = 4096
MAX_RELAYED = 4 * 1024 * 1024  # the agent reads at most 1 MiB; JSON escaping can grow it
RELAY_TIMEOUT = aiohttp.ClientTimeout(total=10)


def webui_dir() -> str:
    return str(resources.files("agent_runtime") / "webui")


def _int_param(query: dict[str, str], name: str) -> str | None:
    value = query.get(name)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError as exc:
        raise BadRequest(f"Failed to parse '{name}': '{value[:32]}' is not an integer") from exc
    return str(number)


def relay_query(call: str, query: dict[str, str]) -> dict[str, str]:
    """The query sent to the agent: the file call's own parameters, checked, nothing else."""
    path = query.get("path")
    if not path:
        raise BadRequest("Expecting 'path' to be present")
    if len(path) > MAX_PATH or "\x00" in path:
        raise BadRequest("'path' is too long or holds a NUL byte")
    out = {"path": path}
    if call == "read":
        for name in ("offset", "length"):
            number = _int_param(query, name)
            if number is not None:
                out[name] = number
    return out


def agent_address(master: Master, agent_id: str) -> tuple[str, bool]:
    """Where the master reaches the agent (the pid it registered with, 'slave(1)@ip:port'), and
    whether its link authenticated (only then may a caller's credentials go there)."""
    agent = master.book.agents.get(agent_id)
    if agent is None:
        raise NotFound(f"No agent with id '{agent_id[:64]}' is registered")
    return agent.pid.rpartition("@")[2], agent.principal is not None


class WebUI:
    def __init__(self, master: Master, directory: str | None = None) -> None:
        self.master = master
        self.directory = directory or webui_dir()
        self._session: aiohttp.ClientSession | None = None

    async def index(self, request: web.Request) -> web.StreamResponse:
        response = web.FileResponse(os.path.join(self.directory, "index.html"))
        # The page names its files by path, not by content hash: revalidate instead of caching.
        response.headers["Cache-Control"] = "no-cache"
        return response

    async def agent_files(self, request: web.Request) -> web.Response:
        call = request.match_info["call"]
        if call not in FILE_CALLS:
            raise NotFound(f"No file call '{call[:32]}': expected browse or read")
        address, authenticated = agent_address(self.master, request.match_info["agent_id"])
        query = relay_query(call, dict(request.query))
        headers = {}
        if authenticated and "Authorization" in request.headers:
            headers["Authorization"] = request.headers["Authorization"]
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=RELAY_TIMEOUT)
        url = f"http://{address}/files/{call}"
        try:
            async with self._session.get(url, params=query, headers=headers,
                                         allow_redirects=False) as answer:
                body = await answer.content.read(MAX_RELAYED + 1)
                if len(body) > MAX_RELAYED:
                    raise ServiceUnavailable(f"Agent at {address} answered more than "
                                             f"{MAX_RELAYED} bytes")
                content_type = answer.headers.get("Content-Type", "text/plain")
                status = answer.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ServiceUnavailable(f"Agent at {address} did not answer: {exc}") from exc
        # An agent's 5xx is not ours to pass on as if the master failed: say whose it was.
        if status >= 500:
            raise ServiceUnavailable(f"Agent at {address} answered {status}")
        return web.Response(status=status, body=body,
                            headers={"Content-Type": content_type,
                                     "Cache-Control": "no-store"})

    async def close(self, app: web.Application) -> None:
        if self._session is not None:
            await self._session.close()

    def install(self, app: web.Application) -> None:
        routes: dict[str, Handler] = {
            "/": self.index,
            "/ui": self.index,
            "/ui/agents/{agent_id}/files/{call}": self.agent_files,
        }
        for path, handler in routes.items():
            app.router.add_get(path, handler)
        # add_static refuses '..' and does not follow links out of the directory.
        app.router.add_static(STATIC_PREFIX, self.directory, show_index=False,
                              follow_symlinks=False)
        app.on_cleanup.append(self.close)


__all__ = ["STATIC_PREFIX", "WebUI", "agent_address", "relay_query", "webui_dir"]
