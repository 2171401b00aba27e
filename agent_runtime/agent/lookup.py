"""Path lookup below a root that cannot be raced: the one way ``/files`` opens sandbox files.

A task owns its sandbox and may change it at any moment, for instance flip an entry between a
directory and a symlink to ``/``. Resolving a path (``realpath``), checking it and then opening it
by name leaves a window in which the name means something else; that window leaked host files.
So nothing here is opened by a full path: the walk holds an ``O_PATH`` descriptor of every
directory it went through and opens the next component relative to the last one with
``O_NOFOLLOW``. What was checked is what is open, whatever the task renames meanwhile.

Symlinks met on the way are read from their own descriptor and walked as more components,
confined (Mesos follows links in sandboxes, so do we, as long as they stay put):

- a link at ``jail_depth`` components below the root or deeper (inside a sandbox) may lead
  anywhere within the directory at ``jail_depth`` on its way: its own sandbox;
- a link above that depth (the agent's ``runs/latest``) may not climb above its own directory;
- an absolute target counts only when it names a path within those same bounds (the root as
  configured or as resolved); ``..`` past the bound or any other absolute target is refused.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager

from agent_runtime.errors import BadRequest, Forbidden, NotFound

# Linux's MAXSYMLINKS: more links than that in one lookup is a loop.
MAX_LINKS = 40
_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


def components(path: str) -> list[str]:
    """``path`` split on ``/``, without the empty and ``.`` parts (``..`` is kept)."""
    return [part for part in path.split("/") if part not in ("", ".")]


class _Walk:
    """The directories opened so far: ``names[i]`` is the name of ``fds[i + 1]``."""

    def __init__(self, root: str, shown: str) -> None:
        self.root = root
        self.shown = shown
        self.names: list[str] = []
        self.fds: list[int] = []
        self.links = 0
        # The root is the operator's (--work_dir): links in it are followed.
        self.fds.append(self._open(root, None, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC))

    def _open(self, name: str, dir_fd: int | None, flags: int = _PATH_FLAGS) -> int:
        try:
            return os.open(name, flags, dir_fd=dir_fd)
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise NotFound(f"'{self.shown}' does not exist") from exc
        except OSError as exc:
            raise Forbidden(f"'{self.shown}' cannot be opened: {exc.strerror}") from exc

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()

    def up(self, floor: int) -> None:
        if len(self.names) <= floor:
            raise Forbidden(f"'{self.shown}' leads outside its sandbox through a symbolic link")
        self.names.pop()
        os.close(self.fds.pop())

    def down(self, name: str) -> str | None:
        """Step into ``name``; returns its target instead when it is a symlink."""
        fd = self._open(name, self.fds[-1])
        if not stat.S_ISLNK(os.fstat(fd).st_mode):
            self.names.append(name)
            self.fds.append(fd)
            return None
        try:
            # From the link's own descriptor: the link that was opened is the one read.
            return os.readlink("", dir_fd=fd)
        finally:
            os.close(fd)

    def absolute(self, target: str, floor: int) -> list[str]:
        """What is left of an absolute link ``target`` after the directory at ``floor``,
        having gone back there; refused unless the target lies within it."""
        held = self.names[:floor]
        for base in (components(os.path.abspath(self.root)),
                     components(os.path.realpath(self.root))):
            bound = base + held
            parts = components(target)
            if parts[:len(bound)] == bound:
                while len(self.names) > floor:
                    self.up(floor)
                return parts[len(bound):]
        raise Forbidden(f"'{self.shown}' leads outside its sandbox through a symbolic link")


@contextmanager
def open_beneath(root: str, parts: list[str], jail_depth: int, shown: str) -> Iterator[int]:
    """An ``O_PATH`` descriptor of ``root/parts`` reached as the module docstring says; closed
    on exit. ``parts`` must hold no ``..``; ``shown`` is the path as the client wrote it.
    Raises NotFound (404), Forbidden (403, a link leading out) or BadRequest (a link loop)."""
    if ".." in parts:
        raise Forbidden(f"'{shown}': '..' is not allowed in file paths")
    walk = _Walk(root, shown)
    try:
        # Components still to walk, the next one last, each with the depth that ``..`` may not
        # go above (only a link's target holds ``..``, so the client's parts need none).
        todo = [(part, 0) for part in reversed(parts)]
        while todo:
            name, floor = todo.pop()
            if name in ("", "."):
                continue
            if name == "..":
                walk.up(floor)
                continue
            target = walk.down(name)
            if target is None:
                continue
            walk.links += 1
            if walk.links > MAX_LINKS:
                raise BadRequest(f"'{shown}': too many levels of symbolic links")
            depth = len(walk.names)  # of the directory holding the link
            floor = jail_depth if depth >= jail_depth else depth
            rest = walk.absolute(target, floor) if target.startswith("/") else \
                target.split("/")
            todo.extend((part, floor) for part in reversed(rest))
        yield walk.fds[-1]
    finally:
        walk.close()
