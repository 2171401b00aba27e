"""One image layer held in memory, written out as a deterministic tar.

Building the layer in memory, keyed by path, is what makes the output reproducible: entries are
written sorted by name whatever order packages were unpacked in, ownership is explicit (never the
building user's), and synthetic entries get :data:`EPOCH` as their mtime. Packages keep the mtimes
their ``.deb`` carries, which are fixed per package version.

Paths are stored as docker layers write them: relative, no ``./`` prefix, no trailing slash.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import posixpath
import tarfile
from collections.abc import Iterator

from .errors import UnsafeEntry

EPOCH = 0
"""mtime of entries we make up, and the images' ``created`` time: 1970-01-01T00:00:00Z."""

# The tar types a layer holds. Device nodes are left out on purpose: containers get /dev from the
# isolators, and creating them needs privileges an image build should not need.
_KEPT_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE,
               tarfile.FIFOTYPE)
_FILE_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE)


def clean_name(name: str) -> str:
    """``./usr/bin/`` -> ``usr/bin``; raises :class:`UnsafeEntry` for absolute or ``..`` paths."""
    if "\0" in name:
        raise UnsafeEntry(f"tar entry name {name!r} holds a NUL byte")
    if name.startswith("/"):
        raise UnsafeEntry(f"tar entry {name!r} has an absolute path")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UnsafeEntry(f"tar entry {name!r} climbs out with '..'")
    return "/".join(parts)


@dataclasses.dataclass
class Entry:
    """One file, directory or link: its tar header and, for regular files, its bytes."""

    info: tarfile.TarInfo
    data: bytes = b""


def _header(name: str, kind: bytes, mode: int, uid: int, gid: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.uname = info.gname = ""  # numeric ids only: names would depend on the build host
    info.mtime = EPOCH
    return info


class LayerTree:
    """The entries of one layer by path. Later entries replace earlier ones, except that a
    directory added twice keeps its first header (several packages own ``usr/bin``) unless set
    with :meth:`add_dir`. Hard links are stored as copies of their target."""

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}

    def __contains__(self, name: str) -> bool:
        return clean_name(name) in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name: str) -> Entry | None:
        return self._entries.get(clean_name(name))

    def items(self) -> Iterator[tuple[str, Entry]]:
        """Entries sorted by name, which puts every directory before what it holds."""
        for name in sorted(self._entries):
            yield name, self._entries[name]

    def add(self, info: tarfile.TarInfo, data: bytes = b"", replace_dir: bool = False) -> None:
        """Add a copy of ``info`` (a header read from a package or made up) and its content.

        An existing directory keeps its header unless ``replace_dir`` (a recipe setting a mode).
        """
        if info.type not in _KEPT_TYPES:
            return
        name = clean_name(info.name)
        if not name:
            return  # the root directory itself: the rootfs provides it
        header = copy_header(info, name)
        if header.type == tarfile.LNKTYPE:
            # A hard link becomes a copy of its target: written sorted, the link could come
            # before its target, which extractors refuse.
            target = self._entries.get(clean_name(header.linkname))
            if target is None or target.info.type not in _FILE_TYPES:
                raise UnsafeEntry(f"hard link {name!r} points at {header.linkname!r}, "
                                  "which is not a file added before it")
            header.type, header.linkname, data = tarfile.REGTYPE, "", target.data
        existing = self._entries.get(name)
        if existing and existing.info.type == tarfile.DIRTYPE and header.type == tarfile.DIRTYPE \
                and not replace_dir:
            return
        if header.type in _FILE_TYPES:
            header.type = tarfile.REGTYPE
            header.size = len(data)
        else:
            header.size, data = 0, b""
        self._entries[name] = Entry(header, data)

    def add_dir(self, name: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> None:
        self.add(_header(name, tarfile.DIRTYPE, mode, uid, gid), replace_dir=True)

    def add_file(self, name: str, data: bytes, mode: int = 0o644, uid: int = 0,
                 gid: int = 0) -> None:
        self.add(_header(name, tarfile.REGTYPE, mode, uid, gid), data)

    def add_symlink(self, name: str, target: str) -> None:
        info = _header(name, tarfile.SYMTYPE, 0o777, 0, 0)
        info.linkname = target
        self.add(info)

    def remove(self, name: str) -> None:
        """Drop ``name`` and everything under it."""
        name = clean_name(name)
        for key in [k for k in self._entries if k == name or k.startswith(name + "/")]:
            del self._entries[key]

    def add_parents(self) -> None:
        """Give every entry its parent directories, so extractors never have to invent them."""
        for name in list(self._entries):
            parent = posixpath.dirname(name)
            while parent and parent not in self._entries:
                self.add_dir(parent)
                parent = posixpath.dirname(parent)

    def to_tar(self) -> bytes:
        """The layer as an uncompressed tar; the same entries always give the same bytes."""
        self.add_parents()
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for _, entry in self.items():
                tar.addfile(entry.info, io.BytesIO(entry.data) if entry.info.isreg() else None)
        return buffer.getvalue()


def copy_header(info: tarfile.TarInfo, name: str) -> tarfile.TarInfo:
    """A fresh header with only the fields a layer keeps (no pax extras, no device numbers)."""
    header = _header(name, info.type, info.mode & 0o7777, info.uid, info.gid)
    header.mtime = int(info.mtime)
    header.linkname = info.linkname
    return header


def digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``: a layer's diff id when ``data`` is its uncompressed tar."""
    return "sha256:" + hashlib.sha256(data).hexdigest()
