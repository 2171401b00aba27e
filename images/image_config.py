"""The runtime part of a Docker image config: what a container of the image runs.

It is the ``config`` object of ``<image id>.json`` (new layout) or of the top layer's ``json``
(old layout), and what the ``docker/runtime`` isolator applies: Entrypoint, Cmd, Env, WorkingDir,
User. Fields we do not use (Labels, Volumes, Healthcheck...) are dropped when reading.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from .errors import BadArchive


def _strings(config: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = config.get(key)
    if value is None:
        return ()
    if isinstance(value, str):  # Docker accepts a lone string where a list is expected
        return (value,)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BadArchive(f"image config field {key} must be a list of strings, not {value!r}")
    return tuple(value)


def _string(config: Mapping[str, Any], key: str) -> str:
    value = config.get(key) or ""
    if not isinstance(value, str):
        raise BadArchive(f"image config field {key} must be a string, not {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class RuntimeConfig:
    cmd: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] = ()
    env: tuple[str, ...] = ()  # "NAME=value"
    working_dir: str = ""
    exposed_ports: tuple[str, ...] = ()  # "6379/tcp"
    user: str = ""

    def to_docker(self) -> dict[str, Any]:
        """The Docker JSON spelling; empty fields are left out, as ``docker inspect`` shows."""
        out: dict[str, Any] = {}
        if self.env:
            out["Env"] = list(self.env)
        if self.entrypoint:
            out["Entrypoint"] = list(self.entrypoint)
        if self.cmd:
            out["Cmd"] = list(self.cmd)
        if self.working_dir:
            out["WorkingDir"] = self.working_dir
        if self.exposed_ports:
            out["ExposedPorts"] = {port: {} for port in self.exposed_ports}
        if self.user:
            out["User"] = self.user
        return out

    @classmethod
    def from_docker(cls, config: Mapping[str, Any] | None) -> RuntimeConfig:
        """Parse Docker's spelling; ``None`` (an image with no config) gives an empty one."""
        if config is None:
            return cls()
        if not isinstance(config, Mapping):
            raise BadArchive(f"image config must be an object, not {config!r}")
        ports = config.get("ExposedPorts") or {}
        if not isinstance(ports, Mapping):
            raise BadArchive(f"image config field ExposedPorts must be an object, not {ports!r}")
        return cls(cmd=_strings(config, "Cmd"), entrypoint=_strings(config, "Entrypoint"),
                   env=_strings(config, "Env"), working_dir=_string(config, "WorkingDir"),
                   exposed_ports=tuple(sorted(str(port) for port in ports)),
                   user=_string(config, "User"))
