"""``/files/browse`` and ``/files/read``: sandbox files, with every path confined to sandboxes.

Paths are resolved (symlinks included) and must stay under the agent's ``slaves/`` tree, so
``../`` or a symlink planted by a task cannot reach the rest of the host. The virtual path
``/frameworks/<fid>/executors/<eid>/runs/latest`` maps onto the real sandbox, as in Mesos.
"""

from __future__ import annotations

import os
import stat
from typing import Any

from agent_runtime.agent import paths
from agent_runtime.errors import BadRequest, Forbidden, NotFound

MAX_READ = 1024 * 1024


def resolve(work_dir: str, agent_id: str, path: str) -> str:
    if not path:
        raise BadRequest("Expecting 'path' to be present")
    if "\x00" in path:
        raise BadRequest("'path' must not contain NUL bytes")
    if any(part == ".." for part in path.split("/")):
        raise Forbidden(f"'{path}': '..' is not allowed in file paths")
    root = paths.slaves_root(work_dir)
    if path.startswith("/frameworks/") and agent_id:
        path = os.path.join(root, agent_id, path.lstrip("/"))
    if not os.path.isabs(path):
        raise BadRequest(f"'{path}' is not an absolute path")
    if not paths.is_within(root, path):
        raise Forbidden(f"'{path}' is outside the agent's sandboxes")
    return os.path.realpath(path)


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


def browse(work_dir: str, agent_id: str, path: str) -> list[dict[str, Any]]:
    real = resolve(work_dir, agent_id, path)
    if not os.path.exists(real):
        raise NotFound(f"'{path}' does not exist")
    if not os.path.isdir(real):
        return [_entry(path, os.stat(real))]
    out = []
    for name in sorted(os.listdir(real)):
        full = os.path.join(real, name)
        try:
            out.append(_entry(os.path.join(path, name), os.lstat(full)))
        except OSError:
            continue
    return out


def read(work_dir: str, agent_id: str, path: str, offset_text: str | None,
         length_text: str | None) -> dict[str, Any]:
    real = resolve(work_dir, agent_id, path)
    try:
        offset = int(offset_text) if offset_text is not None else 0
        length = int(length_text) if length_text is not None else MAX_READ
    except ValueError as exc:
        raise BadRequest(f"Failed to parse offset/length: {exc}") from exc
    if offset < -1 or length < 0:
        raise BadRequest("'offset' must be >= -1 and 'length' >= 0")
    if not os.path.isfile(real):
        if os.path.isdir(real):
            raise BadRequest(f"'{path}' is a directory")
        raise NotFound(f"'{path}' does not exist")
    size = os.path.getsize(real)
    if offset == -1:
        return {"data": "", "offset": size}
    with open(real, "rb") as handle:
        handle.seek(offset)
        data = handle.read(min(length, MAX_READ))
    return {"data": data.decode("utf-8", errors="replace"), "offset": offset}
