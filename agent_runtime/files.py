"""Writing a file so that a reader, or a crash, never sees half of it."""

from __future__ import annotations

import os


def atomic_write(path: str, data: bytes) -> None:
    """Write via a temporary file, fsync, rename over ``path``."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
