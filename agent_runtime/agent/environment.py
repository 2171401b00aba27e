"""The environment an executor starts with: Mesos's ``MESOS_*`` variables, the operator's
``--executor_environment_variables``, and for a custom executor its own CommandInfo's."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from agent_runtime.agent import paths
from agent_runtime.agent.config import AgentConfig
from agent_runtime.agent.model import Executor, FrameworkRecord
from agent_runtime.agent.supervisor import shutdown_grace
from agent_runtime.auth.executor_tokens import ENV as TOKEN_ENV
from agent_runtime.auth.executor_tokens import ExecutorTokens, load_key
from agent_runtime.containerizer.launcher import DEFAULT_PATH
from agent_runtime.errors import BadRequest
from agent_runtime.executors.commandinfo import AGENT_ONLY


@dataclass(frozen=True)
class AgentIdentity:
    """Who the agent is to its executors (the id is known once registered)."""

    agent_id: str
    pid: str
    endpoint: str


@dataclass(frozen=True)
class ExecutorEnvironment:
    ip: str
    http_command_executor: bool
    shutdown_grace_period: float
    recovery_timeout: float
    reregistration_timeout: float
    extra: Mapping[str, str] = field(default_factory=dict)
    # Signs each executor's token (--authenticate_http_executors); None: executors get none.
    tokens: ExecutorTokens | None = None
    # How the executor reaches the agent over TLS (``TlsConfig.executor_environment``).
    tls: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, config: AgentConfig) -> ExecutorEnvironment:
        """From the flags; BadRequest if ``--executor_environment_variables`` is no JSON object
        of strings."""
        extra: dict[str, str] = {}
        if config.executor_environment_variables:
            try:
                loaded = json.loads(config.executor_environment_variables)
            except ValueError as exc:
                raise BadRequest(f"--executor_environment_variables: {exc}") from exc
            if not isinstance(loaded, dict) or not all(
                isinstance(v, str) for v in loaded.values()
            ):
                raise BadRequest("--executor_environment_variables must map names to strings")
            extra = loaded
        tokens = None
        if config.authenticate_http_executors:
            generated = paths.executor_secret_key(config.work_dir) if config.work_dir else None
            tokens = ExecutorTokens(load_key(config.executor_secret_key, generated))
        return cls(ip=config.advertise_ip or config.ip,
                   http_command_executor=config.http_command_executor,
                   shutdown_grace_period=float(config.executor_shutdown_grace_period),
                   recovery_timeout=float(config.recovery_timeout),
                   reregistration_timeout=float(config.executor_reregistration_timeout),
                   extra=extra, tokens=tokens)

    def build(self, agent: AgentIdentity, framework: FrameworkRecord, executor: Executor
              ) -> dict[str, str]:
        env = dict(self.extra)
        env.pop(TOKEN_ENV, None)  # the operator's variables never stand in for the agent's word
        checkpoint = framework.info.checkpoint
        env.update(
            {
                "MESOS_FRAMEWORK_ID": framework.id,
                "MESOS_EXECUTOR_ID": executor.id,
                "MESOS_DIRECTORY": executor.directory,
                "MESOS_SANDBOX": executor.directory,
                "MESOS_AGENT_ENDPOINT": agent.endpoint,
                "MESOS_SLAVE_ID": agent.agent_id,
                "MESOS_SLAVE_PID": agent.pid,
                "MESOS_CHECKPOINT": "1" if checkpoint else "0",
                "MESOS_HTTP_COMMAND_EXECUTOR": "1" if self.http_command_executor else "0",
                "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD":
                    f"{shutdown_grace(self.shutdown_grace_period, executor):g}secs",
                "MESOS_CONTAINER_ID": executor.container_id,
                "LIBPROCESS_PORT": "0",
                "LIBPROCESS_IP": self.ip,
            }
        )
        if checkpoint:
            env["MESOS_RECOVERY_TIMEOUT"] = f"{self.recovery_timeout:g}secs"
            env["MESOS_SUBSCRIPTION_BACKOFF_MAX"] = f"{self.reregistration_timeout:g}secs"
        roles = {r.allocation_info.role for r in executor.info.resources
                 if r.HasField("allocation_info")}
        for task in executor.queued.values():
            roles.update(r.allocation_info.role for r in task.resources)
        if len(roles) == 1:
            env["MESOS_ALLOCATION_ROLE"] = roles.pop()
        if not executor.command_executor:
            for variable in executor.info.command.environment.variables:
                if variable.name not in AGENT_ONLY:  # the agent's word is not the framework's
                    env[variable.name] = variable.value
        env.setdefault("PATH", os.environ.get("PATH", DEFAULT_PATH))
        env.update(self.tls)  # the agent's word on how to reach it, as the token below
        if self.tokens is not None:  # last: no variable of the framework's replaces it
            env[TOKEN_ENV] = self.tokens.sign(executor.container_id, framework.id, executor.id)
        return env
