"""Who may call the agent: its flags turned into the HTTP authentication config (the executor
API is left to executor tokens, see ``auth/executor_tokens.py``), and the credential it
presents to the master on the agent link."""

from __future__ import annotations

import base64

from agent_runtime.agent.config import AgentConfig
from agent_runtime.auth.acls import load_acls
from agent_runtime.auth.credentials import load_credential, load_credentials
from agent_runtime.auth.http_auth import HttpAuthConfig
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
