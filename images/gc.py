"""Image garbage collection's configuration (``--image_gc_config``) and its disk check.

The flag is Mesos's ``ImageGcConfig`` as JSON (or a file holding it)::

    {"image_disk_headroom": 0.1,
     "image_disk_watch_interval": {"nanoseconds": 3600000000000},
     "excluded_images": [{"type": "DOCKER", "docker": {"name": "busybox"}}]}

Every ``image_disk_watch_interval`` the provisioner looks at the disk holding the store; when
less than ``image_disk_headroom`` of it is free, it prunes the images no live container uses,
except ``excluded_images``. The agent's ``PRUNE_IMAGES`` call prunes at once, with its own
exclusions on top of these. Excluded images are taken as Mesos writes them (``Image`` objects)
or as plain names; images of other types than DOCKER are never in this store, so they are
ignored.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from agent_runtime.errors import BadRequest, FlagError
from agent_runtime.flags import json_object_flag

DEFAULT_HEADROOM = 0.1  # Mesos's defaults
DEFAULT_INTERVAL = 3600.0  # seconds


@dataclasses.dataclass(frozen=True)
class ImageGcConfig:
    headroom: float = DEFAULT_HEADROOM  # prune when less than this fraction of the disk is free
    interval: float = DEFAULT_INTERVAL  # seconds between two looks at the disk
    excluded_images: tuple[str, ...] = ()  # never pruned


def image_names(value: Any, where: str) -> tuple[str, ...]:
    """The DOCKER image names in ``value``, a JSON list of ``Image`` objects or of names.
    Raises :class:`BadRequest` naming ``where`` and the entry at fault."""
    if not isinstance(value, list):
        raise BadRequest(f"{where} must be a list of images, not {value!r:.100}")
    names: list[str] = []
    for index, image in enumerate(value):
        at = f"{where}[{index}]"
        if isinstance(image, str) and image:
            names.append(image)
            continue
        if not isinstance(image, dict):
            raise BadRequest(f"{at} must be an Image object or a name, not {image!r:.100}")
        kind = image.get("type", "DOCKER")
        if kind not in ("DOCKER", "APPC"):
            raise BadRequest(f"{at}.type must be DOCKER or APPC, not {kind!r:.100}")
        if kind == "APPC":
            continue
        docker = image.get("docker")
        name = docker.get("name") if isinstance(docker, dict) else None
        if not isinstance(name, str) or not name:
            raise BadRequest(f"{at}.docker.name must be a non-empty string")
        names.append(name)
    return tuple(names)


def _number(data: dict[str, Any], key: str, default: float) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"--image_gc_config: {key} must be a number, not {value!r:.100}")
    return float(value)


def parse_gc_config(text: str) -> ImageGcConfig:
    """``--image_gc_config``: JSON, or the path (``file://`` or not) of a file holding it."""
    try:
        data = json_object_flag("image_gc_config", text)
    except FlagError as exc:
        raise BadRequest(str(exc)) from exc
    headroom = _number(data, "image_disk_headroom", DEFAULT_HEADROOM)
    if not 0.0 <= headroom <= 1.0:
        raise BadRequest(f"--image_gc_config: image_disk_headroom must be between 0 and 1, "
                         f"not {headroom}")
    interval = DEFAULT_INTERVAL
    if "image_disk_watch_interval" in data:
        duration = data["image_disk_watch_interval"]
        nanos = duration.get("nanoseconds") if isinstance(duration, dict) else None
        if isinstance(nanos, bool) or not isinstance(nanos, int) or nanos <= 0:
            raise BadRequest("--image_gc_config: image_disk_watch_interval must be "
                             '{"nanoseconds": <a positive integer>}')
        interval = nanos / 1e9
    excluded = image_names(data.get("excluded_images", []),
                           "--image_gc_config: excluded_images")
    return ImageGcConfig(headroom=headroom, interval=interval, excluded_images=excluded)


def free_fraction(path: str) -> float:
    """The fraction of the filesystem holding ``path`` that unprivileged writers may still use
    (``df``'s view: blocks reserved for root count as used)."""
    stats = os.statvfs(path)
    return stats.f_bavail / stats.f_blocks if stats.f_blocks else 1.0
