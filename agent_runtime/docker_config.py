"""``--docker_config``: Docker's ``config.json`` (its ``auths``), given as a path or as the JSON
itself, as Mesos takes it. Read here for both users of it, the Docker engine seam
(``containerizer/docker_engine.py``) and the image provisioner's registry client
(``images/registry.py``), so the flag means the same to both.
"""

from __future__ import annotations

import json
import os
from typing import Any

from agent_runtime.errors import FlagError


class DockerConfigError(FlagError):
    """``--docker_config`` cannot be read or is not a JSON object."""


def load(value: str | None) -> dict[str, Any] | None:
    """The flag's JSON object; None when the flag is not set. A value that starts with ``{``
    is the JSON itself, anything else a path (``~`` expanded)."""
    if not value:
        return None
    text = value
    if not value.lstrip().startswith("{"):
        path = os.path.expanduser(value)
        try:
            with open(path) as handle:
                text = handle.read()
        except OSError as exc:
            raise DockerConfigError(f"--docker_config: cannot read {path}: "
                                    f"{exc.strerror or exc}") from exc
    try:
        loaded = json.loads(text)
    except ValueError as exc:
        raise DockerConfigError(f"--docker_config is not JSON: {exc}") from exc
    if not isinstance(loaded, dict):
        raise DockerConfigError("--docker_config must be a JSON object")
    return loaded
