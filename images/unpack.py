"""Stream one layer tar (gzip-compressed or not) into a directory, verifying it on the way.

One pass over the bytes: they are hashed for the layer's ``diff_id`` while :func:`extract_layer`
checks and writes the entries, and what is written is charged to a size budget (``limits.py``).
Whiteouts are not applied to the (empty) layer directory, where they would delete nothing: they
are kept in overlayfs's format, for the layers below (see ``backend.py``).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import posixpath
import shutil
import stat
import tarfile
import zlib
from collections.abc import Callable
from typing import IO, Any, Protocol

from .backend_copy import OPAQUE_XATTR
from .errors import BadArchive, DigestMismatch, ImageError, UnsafeEntry
from .extract import OPAQUE_WHITEOUT, WHITEOUT_PREFIX, extract_layer
from .layer import clean_name
from .rootpath import secure_join

_GZIP_MAGIC = b"\x1f\x8b"


class _LayerTar(tarfile.TarFile):
    """A streamed layer tar that keeps its whiteout entries aside instead of yielding them:
    :func:`extract_layer` would apply them to the (empty) layer directory, where they delete
    nothing, and they must instead be kept for the layers below (see :func:`unpack_layer`)."""

    members: list[tarfile.TarInfo]  # TarFile's own, which typeshed does not declare

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.whiteouts: list[str] = []  # before TarFile.__init__, which reads the first entry
        super().__init__(*args, **kwargs)

    def next(self) -> tarfile.TarInfo | None:
        while True:
            member = super().next()
            if member is None:
                return None
            name = clean_name(member.name)
            if not posixpath.basename(name).startswith(WHITEOUT_PREFIX):
                return member
            self.whiteouts.append(name)
            # TarFile.__iter__ indexes self.members: a member kept there but not returned
            # would shift it, and the next entry would be yielded twice.
            if self.members and self.members[-1] is member:
                self.members.pop()


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _CountingReader:
    """Hashes and counts what is read through it."""

    def __init__(self, source: _Readable, on_bytes: Callable[[int], None]) -> None:
        self.source = source
        self.on_bytes = on_bytes
        self.hasher = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        self.hasher.update(data)
        self.on_bytes(len(data))
        return data


def _keep_whiteout(rootfs: str, name: str) -> None:
    """Write a whiteout entry the way overlayfs reads it in a lower directory."""
    parent_name, base = posixpath.split(name)
    parent = secure_join(rootfs, parent_name)
    os.makedirs(parent, exist_ok=True)
    if base == OPAQUE_WHITEOUT:
        os.setxattr(parent, OPAQUE_XATTR, b"y", follow_symlinks=False)
        return
    hidden = base[len(WHITEOUT_PREFIX):]
    if hidden in ("", ".", "..") or "/" in hidden:
        raise UnsafeEntry(f"whiteout {name!r} names no file")
    path = os.path.join(parent, hidden)
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)
    os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(0, 0))


def unpack_layer(source: IO[bytes], rootfs: str, diff_id: str | None, what: str,
                 on_bytes: Callable[[int], None] = lambda count: None,
                 charge: Callable[[int], None] = lambda count: None) -> None:
    """Extract one layer tar (gzip-compressed or not) read from ``source`` into ``rootfs``.

    One pass: the uncompressed bytes are hashed on the way and must match ``diff_id`` when one
    is given (:class:`DigestMismatch` names ``what`` and the digest). Entries are checked by
    :func:`extract_layer`; whiteouts are written in overlayfs's format. ``charge`` counts what
    is written (see ``limits.py``) and stops the extraction by raising."""
    magic = source.read(2)
    source.seek(0)
    plain: _Readable = gzip.GzipFile(fileobj=source) if magic == _GZIP_MAGIC else source
    reader = _CountingReader(plain, on_bytes)
    try:
        with _LayerTar.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
            extract_layer(tar, rootfs, charge)
            for name in tar.whiteouts:
                charge(tarfile.BLOCKSIZE)
                _keep_whiteout(rootfs, name)
        while reader.read(1 << 20):  # the tar's end blocks and padding count in the digest
            pass
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise BadArchive(f"{what} is not a valid layer tar: {exc}") from exc
    except OSError as exc:
        raise ImageError(f"cannot unpack {what} into {rootfs}: {exc.strerror or exc}") from exc
    actual = "sha256:" + reader.hasher.hexdigest()
    if diff_id is not None and actual != diff_id:
        raise DigestMismatch(f"{what} does not match its digest {diff_id} (it hashes to "
                             f"{actual})")
