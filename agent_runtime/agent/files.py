"""``/files/browse`` and ``/files/read``: sandbox files, with every path confined to sandboxes.

A path is either the real one under the agent's ``slaves/`` tree (as ``/state`` shows a
sandbox's ``directory``) or the virtual ``/frameworks/<fid>/executors/<eid>/runs/latest/...``,
which maps onto the same tree, as in Mesos. Anything else, and ``..`` anywhere, is refused.
Files are opened through :func:`lookup.open_beneath`, never by a resolved name: symlinks a task
plants are followed only while they stay in its sandbox, so neither a link nor a link swapped in
mid-request reaches the rest of the host. Only directories are listed and only regular files
read: a FIFO would hang the agent and a device node is not a sandbox file.
"""

from __future__ import annotations

import os
import stat
from contextlib import AbstractContextManager
from typing import Any

from agent_runtime.agent import lookup, paths
from agent_runtime.errors import BadRequest, Forbidden

MAX_READ = 1024 * 1024


def components(work_dir: str, agent_id: str, path: str) -> list[str]:
    """The components of ``path`` below the agent's ``slaves/`` directory."""
    if not path:
        raise BadRequest("Expecting 'path' to be present")
    if "\x00" in path:
        raise BadRequest("'path' must not contain NUL bytes")
    parts = lookup.components(path)  # '..' is refused by open_beneath
    if path.startswith("/frameworks/") and agent_id:
        return [agent_id, *parts]
    if not os.path.isabs(path):
        raise BadRequest(f"'{path}' is not an absolute path")
    root = paths.slaves_root(work_dir)
    # As configured (what /state shows) or resolved (a --work_dir under a symlink).
    for base in (lookup.components(os.path.abspath(root)),
                 lookup.components(os.path.realpath(root))):
        if parts[:len(base)] == base:
            return parts[len(base):]
    raise Forbidden(f"'{path}' is outside the agent's sandboxes")


def _open(work_dir: str, agent_id: str, path: str) -> AbstractContextManager[int]:
    return lookup.open_beneath(paths.slaves_root(work_dir),
                               components(work_dir, agent_id, path), paths.SANDBOX_DEPTH, path)


def _entry(path: str, st: os.stat_result) -> dict[str, Any]:
    return {
        "path": path,
        "nlink": st.st_nlink,
        "size": st.st_size,
        "mtime": st.st_mtime,
        "mode": stat.filemode(st.st_mode),
        "uid": str(st.st_uid),
        "gid": str(st.st_gid),
    }


def entries(work_dir: str, agent_id: str, path: str) -> list[tuple[str, os.stat_result]]:
    """``path`` and its stat when it is a file, else each of its entries (the v1 LIST_FILES
    and ``/files/browse`` both list these)."""
    with _open(work_dir, agent_id, path) as found:
        st = os.fstat(found)
        if not stat.S_ISDIR(st.st_mode):
            return [(path, st)]
        # Reopened from the O_PATH descriptor, not by name: the directory that was reached.
        listing = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=found)
        try:
            out = []
            for name in sorted(os.listdir(listing)):
                try:
                    child = os.stat(name, dir_fd=listing, follow_symlinks=False)
                except OSError:
                    continue  # gone since the listing
                out.append((os.path.join(path, name), child))
            return out
        finally:
            os.close(listing)


def browse(work_dir: str, agent_id: str, path: str) -> list[dict[str, Any]]:
    return [_entry(name, st) for name, st in entries(work_dir, agent_id, path)]


def open_regular(work_dir: str, agent_id: str, path: str) -> int:
    """A read-only descriptor of the sandbox file at ``path``; the caller closes it."""
    with _open(work_dir, agent_id, path) as found:
        mode = os.fstat(found).st_mode
        if stat.S_ISDIR(mode):
            raise BadRequest(f"'{path}' is a directory")
        if not stat.S_ISREG(mode):
            raise BadRequest(f"'{path}' is not a regular file")
        # /proc/self/fd reopens the very inode the O_PATH descriptor holds, for reading.
        return os.open(f"/proc/self/fd/{found}", os.O_RDONLY | os.O_CLOEXEC)


def _number(text: str | None, name: str, default: int) -> int:
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError as exc:
        raise BadRequest(f"Failed to parse {name}: '{text[:64]}' is not an integer") from exc


def read(work_dir: str, agent_id: str, path: str, offset_text: str | None,
         length_text: str | None) -> dict[str, Any]:
    """Mesos's semantics: ``offset=-1`` asks only for the size (its web UI's log viewer starts
    so); ``length=-1``, like no length, reads to the end, capped at :data:`MAX_READ`; an offset at
    or past the end answers the size with no data. Anything below -1 is a 400."""
    offset = _number(offset_text, "offset", 0)
    length = _number(length_text, "length", -1)
    if offset < -1:
        raise BadRequest(f"Negative offset provided: {offset}")
    if length < -1:
        raise BadRequest(f"Negative length provided: {length}")
    handle = open_regular(work_dir, agent_id, path)
    try:
        size = os.fstat(handle).st_size
        if offset == -1 or offset >= size:
            return {"data": "", "offset": size}
        wanted = MAX_READ if length == -1 else min(length, MAX_READ)
        data = os.pread(handle, wanted, offset)
    finally:
        os.close(handle)
    return {"data": data.decode("utf-8", errors="replace"), "offset": offset}
