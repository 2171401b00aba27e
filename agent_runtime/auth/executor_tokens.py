"""Executor identity: a token the agent signs for each executor it launches (Mesos's
``--authenticate_http_executors`` with ``--executor_secret_key``).

The token is an HS256 JWT whose claims are the container, framework and executor ids (``cid``,
``fid``, ``eid``, as Mesos names them). The agent puts it in the executor's environment as
``MESOS_EXECUTOR_AUTHENTICATION_TOKEN``; the executor sends it as ``Authorization: Bearer``.
A call naming other ids than its token's is refused, so a task cannot speak for another
framework's executor even though it can reach the agent's port.
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass

import jwt

from agent_runtime.errors import FlagError, Forbidden, Unauthorized

ENV = "MESOS_EXECUTOR_AUTHENTICATION_TOKEN"
ALGORITHM = "HS256"
KEY_BYTES = 32
CACHE_SIZE = 4096


@dataclass(frozen=True)
class ExecutorClaims:
    container_id: str
    framework_id: str
    executor_id: str


class ExecutorTokens:
    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise FlagError("--executor_secret_key: the key must hold at least 16 bytes")
        self._key = key
        # Tokens already verified: an executor sends the same one on every call, so each is
        # decoded once (a forged token never enters; the map is bounded by CACHE_SIZE).
        self._verified: dict[str, ExecutorClaims] = {}

    def sign(self, container_id: str, framework_id: str, executor_id: str) -> str:
        claims = {"cid": container_id, "fid": framework_id, "eid": executor_id}
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def verify(self, header: str | None) -> ExecutorClaims:
        """The claims of a ``Bearer`` header; Unauthorized (401) when it is missing, is not a
        token, or was not signed with our key."""
        if not header:
            raise Unauthorized("Executor calls need 'Authorization: Bearer <token>' (the "
                               f"executor's {ENV})")
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("Expecting 'Authorization: Bearer <token>'")
        token = token.strip()
        known = self._verified.get(token)
        if known is not None:
            return known
        try:
            # Only our algorithm: a token that names 'none' or another one is refused.
            claims = jwt.decode(token, self._key, algorithms=[ALGORITHM],
                                options={"require": ["cid", "fid", "eid"]})
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"Invalid executor token: {exc}") from exc
        values = [claims.get(name) for name in ("cid", "fid", "eid")]
        if not all(isinstance(value, str) for value in values):
            raise Unauthorized("Invalid executor token: its claims must be strings")
        verified = ExecutorClaims(*(str(value) for value in values))
        if len(self._verified) >= CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = verified
        return verified

    @staticmethod
    def check(claims: ExecutorClaims, container_id: str, framework_id: str,
              executor_id: str) -> None:
        """Forbidden (403) unless the token is this very executor's (this run of it)."""
        mine = (claims.container_id, claims.framework_id, claims.executor_id)
        if not hmac.compare_digest("\0".join(mine), "\0".join(
                (container_id, framework_id, executor_id))):
            raise Forbidden(
                f"Executor token of executor '{claims.executor_id}' of framework "
                f"'{claims.framework_id}' does not authorize calls for executor "
                f"'{executor_id}' of framework '{framework_id}'")


def load_key(path: str | None, generated: str | None) -> bytes:
    """``--executor_secret_key`` (a file), or else a key kept at ``generated`` (made once, mode
    0600, so tokens of executors that outlive an agent restart stay valid); in memory only
    when neither is given."""
    if path:
        try:
            with open(path, "rb") as handle:
                return handle.read().strip()
        except OSError as exc:
            raise FlagError(f"--executor_secret_key: cannot read {path}: {exc}") from exc
    if generated is None:
        return secrets.token_bytes(KEY_BYTES)
    try:
        with open(generated, "rb") as handle:
            key = handle.read()
        if len(key) >= 16:
            return key
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(generated), exist_ok=True)
    key = secrets.token_bytes(KEY_BYTES)
    tmp = f"{generated}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, key)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, generated)
    return key
