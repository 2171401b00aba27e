"""Credentials as Mesos reads them (``--credentials``, ``--http_credentials``, ``--credential``).

A flag's value is the JSON itself, or a file holding it (``file:///path`` or a plain absolute
path). Two formats, as Mesos: JSON ``{"credentials": [{"principal": "p", "secret": "s"}]}`` (a
single ``{"principal", "secret"}`` for the agent's ``--credential``), or text with one
``principal secret`` pair a line.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent_runtime.errors import FlagError


@dataclass(frozen=True)
class Credential:
    principal: str
    secret: str


@dataclass(frozen=True)
class Credentials:
    """The principals a daemon knows, and the one check of a presented secret."""

    secrets: Mapping[str, str]

    def check(self, principal: str, secret: str) -> bool:
        """True only for a known principal with its exact secret; constant time in the
        secret, so its length or prefix cannot be probed by timing."""
        known = self.secrets.get(principal)
        if known is None:
            # Compare anyway, so an unknown principal costs what a wrong secret does.
            hmac.compare_digest(secret.encode(), secret.encode())
            return False
        return hmac.compare_digest(known.encode(), secret.encode())

    def __len__(self) -> int:
        return len(self.secrets)


def read_flag(value: str, name: str) -> str:
    """The text a path-or-inline flag stands for (``file://`` or ``/``: a file's contents)."""
    path = value[len("file://"):] if value.startswith("file://") else value
    if path.startswith("/"):
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise FlagError(f"--{name}: cannot read {path}: {exc}") from exc
    return value


def _pair(entry: Any, name: str) -> Credential:
    if not isinstance(entry, dict):
        raise FlagError(f"--{name}: each credential must be an object with principal and secret")
    principal, secret = entry.get("principal"), entry.get("secret")
    if not isinstance(principal, str) or not principal or not isinstance(secret, str):
        raise FlagError(f"--{name}: a credential needs a non-empty 'principal' and a 'secret'")
    if ":" in principal:
        # HTTP basic splits user and password at the first ':'.
        raise FlagError(f"--{name}: principal {principal!r} must not hold ':'")
    return Credential(principal, secret)


def _entries(text: str, name: str) -> list[Credential]:
    stripped = text.strip()
    if stripped.startswith(("{", "[")):
        try:
            data = json.loads(stripped)
        except ValueError as exc:
            raise FlagError(f"--{name}: invalid JSON: {exc}") from exc
        if isinstance(data, dict) and "credentials" in data:
            data = data["credentials"]
        if isinstance(data, dict):
            data = [data]
        if not isinstance(data, list):
            raise FlagError(f"--{name}: expected {{\"credentials\": [...]}}")
        return [_pair(entry, name) for entry in data]
    out = []
    for number, line in enumerate(stripped.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2:
            raise FlagError(f"--{name}: line {number}: expected 'principal secret'")
        out.append(_pair({"principal": parts[0], "secret": parts[1]}, name))
    return out


def load_credentials(value: str | None, name: str) -> Credentials | None:
    """``--credentials`` / ``--http_credentials``: None when the flag is unset."""
    if not value:
        return None
    entries = _entries(read_flag(value, name), name)
    if not entries:
        raise FlagError(f"--{name}: no credentials given")
    return Credentials({entry.principal: entry.secret for entry in entries})


def load_credential(value: str | None, name: str = "credential") -> Credential | None:
    """The agent's ``--credential``: exactly one principal and secret."""
    if not value:
        return None
    entries = _entries(read_flag(value, name), name)
    if len(entries) != 1:
        raise FlagError(f"--{name}: expected exactly one principal and secret")
    return entries[0]
