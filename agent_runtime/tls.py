"""TLS for the daemons' HTTP APIs, the agent link and our clients, configured by Mesos's
``LIBPROCESS_SSL_*`` environment (the variables and their meaning: ``executors/tls.py``, which
executors share, so the rule is written once).

:func:`from_env` reads the environment at the edge (each ``main``) into a :class:`TlsConfig`
passed down. The HTTP servers and clients take its ``ssl`` contexts; the agent link takes gRPC
credentials. gRPC cannot skip verifying a server, so an agent always verifies the master's
certificate against ``LIBPROCESS_SSL_CA_FILE`` (or the system's CAs), whatever
``LIBPROCESS_SSL_VERIFY_CERT`` says; and it cannot verify a client certificate only when one is
presented, so with either VERIFY_CERT or REQUIRE_CERT the master requires one from each agent.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agent_runtime.errors import FlagError
from agent_runtime.executors import tls as rules

if TYPE_CHECKING:
    import grpc


@dataclass(frozen=True)
class TlsConfig:
    """The ``LIBPROCESS_SSL_*`` variables that were set (none: TLS off)."""

    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return rules.enabled(self.env)

    @property
    def scheme(self) -> str:
        return "https" if self.enabled else "http"

    def url(self, address: str) -> str:
        """``scheme://address`` for ``host:port`` (an address with a scheme is kept)."""
        return address if "://" in address else f"{self.scheme}://{address}"

    def server_context(self) -> ssl.SSLContext | None:
        if not self.enabled:
            return None
        return _checked(lambda: rules.server_context(self.env))

    def client_context(self) -> ssl.SSLContext | None:
        if not self.enabled:
            return None
        return _checked(lambda: rules.client_context(self.env))

    def executor_environment(self) -> dict[str, str]:
        """What an executor needs to reach its agent: TLS on, and how to verify the agent. The
        agent's own certificate and key go along only where the agent requires a client
        certificate (the executor has none of its own; its identity is its token)."""
        if not self.enabled:
            return {}
        names = [rules.ENABLED, rules.CA_FILE, rules.CA_DIR, rules.VERIFY_CERT]
        if rules.flag(self.env, rules.REQUIRE_CERT):
            names += [rules.CERT_FILE, rules.KEY_FILE, rules.REQUIRE_CERT]
        return {name: self.env[name] for name in names if name in self.env}

    def _pem(self, name: str) -> bytes | None:
        path = self.env.get(name)
        if not path:
            return None
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except OSError as exc:
            raise FlagError(f"{name}: cannot read {path}: {exc}") from exc

    def grpc_server_credentials(self) -> grpc.ServerCredentials:
        import grpc

        key, cert = self._pem(rules.KEY_FILE), self._pem(rules.CERT_FILE)
        if key is None or cert is None:
            raise FlagError(f"{rules.ENABLED} needs {rules.CERT_FILE} and {rules.KEY_FILE}")
        verify = any(rules.flag(self.env, n) for n in (rules.VERIFY_CERT, rules.REQUIRE_CERT))
        return grpc.ssl_server_credentials([(key, cert)], self._pem(rules.CA_FILE),
                                           require_client_auth=verify)

    def grpc_channel_credentials(self) -> grpc.ChannelCredentials:
        import grpc

        return grpc.ssl_channel_credentials(self._pem(rules.CA_FILE), self._pem(rules.KEY_FILE),
                                            self._pem(rules.CERT_FILE))


def _checked(build: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    try:
        return build()
    except (ValueError, OSError, ssl.SSLError) as exc:
        raise FlagError(f"TLS: {exc}") from exc


def from_env(environ: Mapping[str, str]) -> TlsConfig:
    """The ``LIBPROCESS_SSL_*`` variables of ``environ``; FlagError when one is malformed."""
    env = {name: environ[name] for name in rules.NAMES if name in environ}
    try:
        for name in (rules.ENABLED, rules.VERIFY_CERT, rules.REQUIRE_CERT):
            rules.flag(env, name)
    except ValueError as exc:
        raise FlagError(str(exc)) from exc
    return TlsConfig(env)


PLAIN = TlsConfig()
