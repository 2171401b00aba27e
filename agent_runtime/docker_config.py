"""``--docker_config``: Docker's ``config.json`` (its ``auths``), given as a path or as the JSON
itself, as Mesos takes it. Read here for both users of it, the Docker engine seam
(``containerizer/docker_engine.py``) and the image provisioner's registry client
(``images/registry.py``), so the flag means the same to both.
"""

from __future__ import annotations

from typing import Any

from agent_runtime.errors import FlagError
from agent_runtime.flags import json_object_flag


class DockerConfigError(FlagError):
    """``--docker_config`` cannot be read or is not a JSON object."""


def load(value: str | None) -> dict[str, Any] | None:
    """The flag's JSON object; None when the flag is not set. A value that starts with ``{``
    is the JSON itself, anything else a path (``~`` expanded)."""
    if not value:
        return None
    try:
        return json_object_flag("docker_config", value)
    except FlagError as exc:
        raise DockerConfigError(str(exc)) from exc
