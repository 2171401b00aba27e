"""HTTP authentication for both daemons, in one middleware, so every route is covered: the
ones here today and the ones added later.

Which realm a request falls in is decided by its path and method, as Mesos's realms:
``<daemon>-scheduler`` for the scheduler API (``--authenticate_frameworks``),
``<daemon>-readonly`` for GET and HEAD (``--authenticate_http_readonly``), and
``<daemon>-readwrite`` for everything else (``--authenticate_http_readwrite``). The executor
API is not here: executors present a token, checked where the call's ids are known
(``executor_tokens.py``). ``/health``, ``/version`` and the agent link's address are open.

A Basic header is checked whenever credentials are configured, realm required or not: a wrong
password is a 401, never taken as the principal it names. Without ``--credentials`` nothing
can be checked, so the named user is taken at its word (as before authentication existed),
except when ``--acls`` is given: then an unverified name counts as no principal at all.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Middleware

from agent_runtime.auth import views
from agent_runtime.auth.acls import Authorizer
from agent_runtime.auth.credentials import Credentials
from agent_runtime.proto import agent_pb2, master_pb2

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PRINCIPAL = "principal"
# The v1 operator API's answers, by daemon: what a protobuf state answer is filtered as.
RESPONSES = {"mesos-master": master_pb2.Response, "mesos-agent": agent_pb2.Response}


@dataclass(frozen=True)
class HttpAuthConfig:
    daemon: str  # "mesos-master" or "mesos-agent": the realms' prefix
    credentials: Credentials | None = None
    readonly: bool = False
    readwrite: bool = False
    frameworks: bool = False
    authorizer: Authorizer = field(default_factory=Authorizer)
    acls_given: bool = False
    open_paths: frozenset[str] = frozenset()
    scheduler_paths: frozenset[str] = frozenset()
    executor_paths: frozenset[str] = frozenset()

    def realm(self, path: str, method: str) -> tuple[str, bool]:
        """The realm of a request and whether it must authenticate."""
        if path in self.scheduler_paths:
            return f"{self.daemon}-scheduler", self.frameworks
        if method in ("GET", "HEAD"):
            return f"{self.daemon}-readonly", self.readonly
        return f"{self.daemon}-readwrite", self.readwrite


AUTH_KEY = web.AppKey("auth", HttpAuthConfig)


def basic_credentials(header: str) -> tuple[str, str] | None:
    """``(user, password)`` of a Basic ``Authorization`` header; None when it is not Basic
    or cannot be decoded (which is answered as a failed authentication, not a 500)."""
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep or not user:
        return None
    return user, password


def _unauthorized(realm: str, why: str) -> web.Response:
    return web.Response(status=401, text=why,
                        headers={"WWW-Authenticate": f'Basic realm="{realm}"'})


def auth_middleware(config: HttpAuthConfig) -> Middleware:
    filtering = views.needed(config.authorizer)
    response_type = RESPONSES.get(config.daemon, master_pb2.Response)

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        if path in config.open_paths or path in config.executor_paths:
            return await handler(request)
        realm, required = config.realm(path, request.method)
        header = request.headers.get("Authorization")
        principal: str | None = None
        if header is not None and not header.lower().startswith("bearer "):
            pair = basic_credentials(header)
            if pair is None:
                return _unauthorized(realm, "Malformed 'Authorization' header (expected Basic)")
            user, password = pair
            if config.credentials is not None:
                if not config.credentials.check(user, password):
                    return _unauthorized(realm, "Authentication failed: wrong principal or "
                                                "secret")
                principal = user
            elif not config.acls_given:
                principal = user
        if required and principal is None:
            return _unauthorized(realm, f"Authentication required (realm '{realm}')")
        request[PRINCIPAL] = principal
        if request.method in ("GET", "HEAD") and path not in config.scheduler_paths:
            config.authorizer.require("get_endpoints", principal, path)
            if path.endswith("/flags") or path == "/flags":
                config.authorizer.require("view_flags", principal)
        response = await handler(request)
        if filtering:
            caller = principal

            def allowed(action: str, obj: str | None) -> bool:
                return config.authorizer.allowed(action, caller, obj)

            response = views.filter_response(response, allowed, response_type)
        return response

    return authenticate


def principal(request: web.Request) -> str | None:
    """The authenticated principal of a request (None: anonymous)."""
    value = request.get(PRINCIPAL)
    return value if isinstance(value, str) else None


def authorize(request: web.Request, action: str, obj: str | None = None) -> None:
    """403 naming the action unless the daemon's ACLs let this request's principal do it."""
    config = request.config_dict.get(AUTH_KEY)
    if config is not None:
        config.authorizer.require(action, principal(request), obj)


def allowed(request: web.Request, action: str, obj: str | None = None) -> bool:
    """Whether the request's principal may ``action`` on ``obj`` (filters of the state views)."""
    config = request.config_dict.get(AUTH_KEY)
    return config is None or config.authorizer.allowed(action, principal(request), obj)
