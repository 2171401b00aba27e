"""Docker image references: ``[registry/]repository[:tag|@digest]``.

Docker Hub names are normalised the way ``docker`` shows them, so ``redis``, ``library/redis``,
``docker.io/library/redis:latest`` are one image: repository ``redis``, tag ``latest``.
"""

from __future__ import annotations

import dataclasses
import re

from agent_runtime.errors import BadRequest

DEFAULT_TAG = "latest"
_HUB_PREFIXES = ("docker.io/", "index.docker.io/", "registry-1.docker.io/")
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


@dataclasses.dataclass(frozen=True)
class Reference:
    registry: str  # "" for Docker Hub
    repository: str  # "redis", "foo/bar"
    tag: str  # DEFAULT_TAG when the reference gave none
    digest: str = ""  # "sha256:<hex>" when pinned by digest

    def __str__(self) -> str:
        name = f"{self.registry}/{self.repository}" if self.registry else self.repository
        return f"{name}@{self.digest}" if self.digest else f"{name}:{self.tag}"

    @property
    def name(self) -> str:
        """Registry and repository, without tag: the key of a ``repositories`` file."""
        return f"{self.registry}/{self.repository}" if self.registry else self.repository


def parse_reference(text: str) -> Reference:
    """Parse and normalise ``text``; raises :class:`BadRequest` with the reason."""
    rest, _, digest = text.strip().partition("@")
    if digest and not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise BadRequest(f"image reference {text!r}: bad digest {digest!r}")
    name, tag = rest, DEFAULT_TAG
    slash, colon = rest.rfind("/"), rest.rfind(":")
    if colon > slash:  # a ':' after the last '/' starts a tag; before it, it is a registry port
        name, tag = rest[:colon], rest[colon + 1:]
        if not _TAG.match(tag):
            raise BadRequest(f"image reference {text!r}: bad tag {tag!r}")
    for prefix in _HUB_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix):]
    registry = ""
    first, sep, remainder = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        registry, name = first, remainder
    if not registry and name.startswith("library/") and name.count("/") == 1:
        name = name[len("library/"):]
    if not name or not all(_COMPONENT.match(part) for part in name.split("/")):
        raise BadRequest(f"image reference {text!r}: bad repository name {name!r}")
    return Reference(registry=registry, repository=name, tag=tag, digest=digest)
