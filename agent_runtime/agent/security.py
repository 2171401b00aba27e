"""Who may call the agent: its flags turned into the HTTP authentication config (the executor
API is left to executor tokens, see ``auth/executor_tokens.py``), and the credential it
presents to the master on the agent link."""

from __future__ import annotations

import base64
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from agent_runtime.agent.config import AgentConfig
from agent_runtime.agent.executor_table import ExecutorTable
from agent_runtime.agent.sandbox_acl import sandbox_user
from agent_runtime.auth.acls import load_acls
from agent_runtime.auth.credentials import load_credential, load_credentials
from agent_runtime.auth.http_auth import HttpAuthConfig, authorize
from agent_runtime.errors import FlagError

EXECUTOR_PATHS = frozenset({"/api/v1/executor", "/slave(1)/api/v1/executor"})
OPEN_PATHS = frozenset({"/health", "/slave(1)/health", "/version"})


def http_auth_config(config: AgentConfig) -> HttpAuthConfig:
    loaded = load_credentials(config.http_credentials, "http_credentials")
    if (config.authenticate_http_readonly or config.authenticate_http_readwrite) and (
            loaded is None):
        raise FlagError("--authenticate_http_readonly/--authenticate_http_readwrite need "
                        "--http_credentials")
    return HttpAuthConfig(
        daemon="mesos-agent", credentials=loaded, readonly=config.authenticate_http_readonly,
        readwrite=config.authenticate_http_readwrite, authorizer=load_acls(config.acls),
        acls_given=bool(config.acls), open_paths=OPEN_PATHS, executor_paths=EXECUTOR_PATHS)


def link_metadata(config: AgentConfig) -> tuple[tuple[str, str], ...]:
    """What the agent sends with its link to the master: its ``--credential``, if any, as an
    HTTP basic ``authorization`` (gRPC metadata keys are lower case)."""
    credential = load_credential(config.credential)
    if credential is None:
        return ()
    token = base64.b64encode(f"{credential.principal}:{credential.secret}".encode()).decode()
    return (("authorization", f"Basic {token}"),)


FILES_PATHS = frozenset(f"/files/{name}{suffix}" for name in ("browse", "read", "download")
                        for suffix in ("", ".json"))


def sandbox_guard(table: ExecutorTable, work_dir: str, agent_id: Callable[[], str]
                  ) -> Middleware:
    """``access_sandboxes`` on ``/files``, with the sandbox's user as the object (the v1
    LIST_FILES and READ_FILE check the same in ``operator_api.py``)."""
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.rstrip("/") in FILES_PATHS:
            user = sandbox_user(table, work_dir, agent_id(), request.query.get("path", ""))
            authorize(request, "access_sandboxes", user)
        return await handler(request)

    return guard
