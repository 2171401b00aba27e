"""Resolve a path inside a root filesystem the way a chroot would, never leaving the root.

An image's symlinks are written for the container, where ``/`` is the image's root: an absolute
target restarts from the root and ``..`` stops at it. Resolving them on the host with the host's
rules would let a layer point a write (or a check) at the host's files, so every walk through an
image's tree goes through :func:`resolve`, whether the tree is on disk (:func:`secure_join`, used
while extracting) or in memory (the library closure check reads tar headers).

``resolve`` is pure: it asks a ``readlink`` callback about each component, so the two trees share
one set of rules: the same loop limit, the same clamping at the root.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from .errors import UnsafeEntry

MAX_SYMLINKS = 40  # as Linux's MAXSYMLINKS: a longer chain is taken for a loop


class LinkLoop(UnsafeEntry):
    """More than :data:`MAX_SYMLINKS` links on one path: a loop, or a chain as long as one."""


def _parts(path: str) -> list[str]:
    return [part for part in path.split("/") if part not in ("", ".")]


def resolve(path: str, readlink: Callable[[str], str | None]) -> str:
    """``path`` relative to the root (``a/b``, no leading slash) with every symlink followed.

    ``readlink(name)`` gets a root-relative name whose parents are already resolved and answers
    the link's target, or ``None`` when ``name`` is not a symlink (missing ones included: the
    caller decides what a missing component means). ``..`` never climbs above the root and an
    absolute target restarts from it, so the answer always names something inside the root.
    Raises :class:`LinkLoop` after :data:`MAX_SYMLINKS` links."""
    pending = _parts(path)
    resolved: list[str] = []
    hops = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        target = readlink("/".join([*resolved, part]))
        if target is None:
            resolved.append(part)
            continue
        hops += 1
        if hops > MAX_SYMLINKS:
            raise LinkLoop(f"too many levels of symbolic links under {path!r}")
        if target.startswith("/"):
            resolved = []
        pending = _parts(target) + pending
    return "/".join(resolved)


def secure_join(root: str, name: str) -> str:
    """``root/name`` with the symlinks on disk under ``root`` resolved by :func:`resolve`.

    The last component is resolved too; a caller about to create or replace it resolves the
    parent only and joins the base name itself."""

    def readlink(relative: str) -> str | None:
        try:
            return os.readlink(os.path.join(root, relative))
        except OSError:  # not a link, missing, or under something that is not a directory
            return None

    relative = resolve(name, readlink)
    return os.path.join(root, relative) if relative else root
