"""Getting a task's image into the engine: pulled only when missing, or loaded from a tarball.

Where an image comes from depends on ``--docker_registry``:

- a local directory (starts with ``/``): ``docker load`` of ``<dir>/<reference>.tar``, named as
  Mesos names archives (``busybox:latest`` -> ``busybox:latest.tar``, ``redis`` -> ``redis.tar``;
  ``<name>.tar`` and ``<name>:latest.tar`` stand in for each other). This is how images reach a
  machine with no registry (see ``images/``);
- a registry URL (``http://127.0.0.1:5000``): pull ``<host>/<repository>:<tag>`` and tag it as the
  task named it, so the container is created from the name in the TaskInfo;
- unset: the engine's default registry, as ``docker pull`` does.

Mesos's Docker containerizer ignores ``--docker_registry`` (it is a Mesos-containerizer flag); we
use it for both so one agent flag says where images come from on an offline cluster.
"""

from __future__ import annotations

import asyncio
import os
from urllib.parse import urlsplit

from agent_runtime.containerizer.docker_engine import DockerEngine, ImageNotFound, registry_auth
from agent_runtime.errors import LaunchError

DOCKER_HUB_HOSTS = frozenset({"registry-1.docker.io", "index.docker.io", "docker.io"})


def split_reference(reference: str) -> tuple[str | None, str, str]:
    """``[registry/]repository[:tag|@digest]`` -> (registry or None, repository, tag or digest).

    The first component is a registry when it looks like a host (a dot, a port, or
    ``localhost``), as the docker CLI decides.
    """
    registry: str | None = None
    rest = reference
    first, slash, remainder = reference.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, rest = first, remainder
    if "@" in rest:
        repository, _, digest = rest.partition("@")
        return registry, repository, "@" + digest
    repository, colon, tag = rest.rpartition(":")
    if not colon:
        return registry, rest, "latest"
    return registry, repository, tag


def archive_candidates(directory: str, reference: str) -> list[str]:
    """Tarball names to try for ``reference``, the name as given first (as Mesos)."""
    names = [reference]
    registry, repository, tag = split_reference(reference)
    base = f"{registry}/{repository}" if registry else repository
    if tag == "latest":
        names += [base, f"{base}:latest"]
    return [os.path.join(directory, f"{name}.tar") for name in dict.fromkeys(names)]


class ImageFetcher:
    def __init__(self, engine: DockerEngine, registry: str | None,
                 docker_config: str | None) -> None:
        self.engine = engine
        self.registry = registry or None
        self.docker_config = docker_config
        # Two tasks naming the same missing image share one pull or load.
        self._locks: dict[str, asyncio.Lock] = {}

    async def ensure(self, image: str, force_pull: bool) -> None:
        """Make ``image`` present in the engine; raises a LaunchError naming it otherwise."""
        lock = self._locks.setdefault(image, asyncio.Lock())
        async with lock:
            if not force_pull and await self.engine.has_image(image):
                return
            try:
                await self._fetch(image)
            except LaunchError as exc:
                raise ImageNotFound(f"Failed to obtain image '{image}': {exc}") from exc

    async def _fetch(self, image: str) -> None:
        registry = self.registry
        if registry is not None and registry.startswith("/"):
            await self._load(registry, image)
            return
        own_registry, repository, tag = split_reference(image)
        host = urlsplit(registry).netloc if registry and "://" in registry else registry
        if own_registry or not host or host in DOCKER_HUB_HOSTS:
            await self.engine.pull(image, registry_auth(self.docker_config,
                                                        own_registry or "docker.io"))
            return
        separator = "" if tag.startswith("@") else ":"
        remote = f"{host}/{repository}{separator}{tag}"
        await self.engine.pull(remote, registry_auth(self.docker_config, host))
        if not tag.startswith("@"):
            await self.engine.tag(remote, repository, tag)

    async def _load(self, directory: str, image: str) -> None:
        candidates = archive_candidates(directory, image)
        path = next((p for p in candidates if os.path.isfile(p)), None)
        if path is None:
            raise ImageNotFound(f"no archive {' or '.join(candidates)}")
        loaded = await self.engine.load(path)
        if await self.engine.has_image(image):
            return
        # An archive saved under another name (or by image id) stands for the one asked for.
        registry, repository, tag = split_reference(image)
        if len(loaded) == 1 and not tag.startswith("@"):
            name = f"{registry}/{repository}" if registry else repository
            await self.engine.tag(loaded[0], name, tag)
            return
        raise ImageNotFound(f"archive '{path}' does not hold '{image}' (it holds {loaded})")
