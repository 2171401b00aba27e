"""Unpack layer tars into a directory without letting an entry escape it.

Layers come from archives and registries we do not control, so every entry is checked:

- names that are absolute or hold ``..`` are refused (:class:`UnsafeEntry`);
- symlinks whose relative target climbs above the root are refused; absolute targets are fine,
  because inside the container they resolve against the image's root, as they do here;
- hard links must name an entry inside the root;
- the directories an entry is written into are resolved inside the root, following symlinks as
  a chroot would (:func:`~.rootpath.secure_join`), so a symlink laid down by an earlier entry or
  layer can never redirect a write to the host;
- an existing file is unlinked before it is replaced, never written through;
- owner, mode and times are set through a descriptor opened with ``O_NOFOLLOW``, never through a
  link: a hard link to a symlink links the symlink itself, and its target keeps its mode (a
  layer once made a host file setuid and world-writable that way).

Whiteouts (``.wh.<name>`` deletes ``<name>`` from the layers below, ``.wh..wh..opq`` empties a
directory of them) are applied, so calling :func:`extract_layer` once per layer, bottom first, on
one directory gives the image's root filesystem (what the copy backend needs). Ownership is kept
when running as root; device nodes are skipped (containers get /dev from the isolators).
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import shutil
import stat
import tarfile
from collections.abc import Callable

from .errors import BadArchive, ImageError, UnsafeEntry
from .layer import clean_name
from .rootpath import secure_join

WHITEOUT_PREFIX = ".wh."
OPAQUE_WHITEOUT = ".wh..wh..opq"
_CHUNK = 1 << 20


def _check_symlink(name: str, target: str) -> None:
    if "\0" in target:
        raise UnsafeEntry(f"symlink {name!r} has a NUL byte in its target")
    if target.startswith("/"):
        return
    depth = name.count("/")  # directories above the link, from the root
    for part in target.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                raise UnsafeEntry(f"symlink {name!r} -> {target!r} points outside the image")
        elif part not in ("", "."):
            depth += 1


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


class _Extractor:
    def __init__(self, tar: tarfile.TarFile, dest: str, charge: Callable[[int], None]) -> None:
        self.tar = tar
        self.dest = dest
        self.charge = charge
        self.as_root = os.geteuid() == 0
        self.written: set[str] = set()  # this layer's own paths, which opaque whiteouts keep
        self.dir_times: list[tuple[str, int]] = []  # (name in the layer, mtime)

    def run(self) -> None:
        for member in self.tar:
            try:
                self.entry(member)
            except OSError as exc:  # a file where a directory should be, a full disk, ...
                raise ImageError(f"cannot extract {member.name!r} into {self.dest}: "
                                 f"{exc.strerror or exc}") from exc
            except (OverflowError, ValueError) as exc:
                # Header values the OS cannot take: a uid, mtime or mode out of range, a NUL
                # byte in a name. The tar is at fault, not the filesystem.
                raise BadArchive(f"tar entry {member.name!r} cannot be extracted: {exc}"
                                 ) from exc
        # Directory mtimes last: writing into a directory changes its mtime. Resolved again,
        # because a later entry may have replaced a parent with a symlink to the host.
        for name, mtime in reversed(self.dir_times):
            parent_name, base = posixpath.split(name)
            _date_directory(os.path.join(secure_join(self.dest, parent_name), base), mtime)

    def entry(self, member: tarfile.TarInfo) -> None:
        self.charge(tarfile.BLOCKSIZE)  # its header: a layer of a million empty files costs too
        name = clean_name(member.name)
        if not name:
            return
        parent_name, base = posixpath.split(name)
        parent = secure_join(self.dest, parent_name)
        if base == OPAQUE_WHITEOUT:
            self.opaque(parent)
            return
        if base.startswith(WHITEOUT_PREFIX):
            hidden = base[len(WHITEOUT_PREFIX):]
            if hidden in ("", ".", ".."):
                raise UnsafeEntry(f"whiteout {member.name!r} names no file")
            _remove(os.path.join(parent, hidden))
            return
        os.makedirs(parent, exist_ok=True)
        path = os.path.join(parent, base)
        self.remember(path)
        if member.isdir():
            if not (os.path.isdir(path) and not os.path.islink(path)):
                _remove(path)
                os.mkdir(path)
            self.dir_times.append((name, int(member.mtime)))
        elif member.isreg():
            self.regular(member, path)
        elif member.issym():
            _check_symlink(name, member.linkname)
            _remove(path)
            os.symlink(member.linkname, path)
        elif member.islnk():
            self.hardlink(member, path)
        elif member.isfifo():
            _remove(path)
            os.mkfifo(path)
        else:
            return  # character and block devices: see the module docstring
        owner = (member.uid, member.gid) if self.as_root else None
        _apply(path, owner, stat.S_IMODE(member.mode), int(member.mtime))

    def remember(self, path: str) -> None:
        """Note ``path`` and its parents as this layer's, whatever order the tar lists them."""
        while path != self.dest and path not in self.written:
            self.written.add(path)
            path = os.path.dirname(path)

    def regular(self, member: tarfile.TarInfo, path: str) -> None:
        source = self.tar.extractfile(member)
        if source is None:
            raise UnsafeEntry(f"tar entry {member.name!r} has no data")
        _remove(path)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        with source, os.fdopen(os.open(path, flags, 0o600), "wb") as out:
            # Charged before each write, not from the header's size: a gzip bomb stops here,
            # one chunk past the cap, instead of filling the disk first.
            while chunk := source.read(_CHUNK):
                self.charge(len(chunk))
                out.write(chunk)

    def hardlink(self, member: tarfile.TarInfo, path: str) -> None:
        target_name = clean_name(member.linkname)
        parent_name, base = posixpath.split(target_name)
        target = os.path.join(secure_join(self.dest, parent_name), base)
        if not os.path.lexists(target) or os.path.isdir(target):
            raise UnsafeEntry(f"hard link {member.name!r} to missing {member.linkname!r}")
        _remove(path)
        # A link to a symlink links the symlink itself; _apply then leaves its target alone.
        os.link(target, path, follow_symlinks=False)

    def opaque(self, directory: str) -> None:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            for child in os.listdir(directory):
                path = os.path.join(directory, child)
                if path not in self.written:
                    _remove(path)


def _apply(path: str, owner: tuple[int, int] | None, mode: int, mtime: int) -> None:
    """Set ``path``'s owner, mode and mtime without ever following a symlink at ``path``.

    They are set through a descriptor opened with ``O_NOFOLLOW``, so they land on the inode the
    entry made. A symlink (a symlink entry, or a hard link to one) cannot be opened so: it gets
    its own owner and time, and no mode, since Linux links have none. Its parents were resolved
    inside the root by the caller just before."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        if owner is not None:
            os.lchown(path, *owner)
        os.utime(path, (mtime, mtime), follow_symlinks=False)
        return
    try:
        if owner is not None:
            os.fchown(fd, *owner)
        os.fchmod(fd, mode)  # after chown, which clears setuid bits
        os.utime(fd, (mtime, mtime))
    finally:
        os.close(fd)


def _date_directory(path: str, mtime: int) -> None:
    """Set a directory's mtime, unless a later entry replaced it (with a symlink, say)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return
        raise
    try:
        os.utime(fd, (mtime, mtime))
    finally:
        os.close(fd)


def extract_layer(tar: tarfile.TarFile, dest: str,
                  charge: Callable[[int], None] = lambda count: None) -> None:
    """Apply one layer onto ``dest`` (created if missing). Raises :class:`UnsafeEntry`.

    ``charge(count)`` is called before ``count`` more bytes are written (file data, and a tar
    block per entry); it raises to stop the extraction (see ``limits.py``)."""
    os.makedirs(dest, exist_ok=True)
    _Extractor(tar, os.path.realpath(dest), charge).run()
