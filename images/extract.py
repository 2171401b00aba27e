"""Unpack layer tars into a directory without letting an entry escape it.

Layers come from archives and registries we do not control, so every entry is checked:

- names that are absolute or hold ``..`` are refused (:class:`UnsafeEntry`);
- symlinks whose relative target climbs above the root are refused; absolute targets are fine,
  because inside the container they resolve against the image's root, as they do here;
- hard links must name an entry inside the root;
- the directories an entry is written into are resolved inside the root, following symlinks as
  a chroot would (``securejoin``), so a symlink laid down by an earlier entry or layer can never
  redirect a write to the host;
- an existing file is unlinked before it is replaced, never written through.

Whiteouts (``.wh.<name>`` deletes ``<name>`` from the layers below, ``.wh..wh..opq`` empties a
directory of them) are applied, so calling :func:`extract_layer` once per layer, bottom first, on
one directory gives the image's root filesystem (what the copy backend needs). Ownership is kept
when running as root; device nodes are skipped (containers get /dev from the isolators).
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import stat
import tarfile

from .errors import BadArchive, ImageError, UnsafeEntry
from .layer import clean_name

WHITEOUT_PREFIX = ".wh."
OPAQUE_WHITEOUT = ".wh..wh..opq"
_MAX_SYMLINKS = 40  # as Linux's MAXSYMLINKS: a longer chain is a loop


def secure_join(root: str, name: str) -> str:
    """``root/name`` with every symlink on the way resolved as if ``root`` were ``/``.

    ``..`` never goes above ``root``, and absolute link targets restart from ``root``, so the
    result always lies inside ``root``. The last component is resolved too.
    """
    parts = [part for part in name.split("/") if part not in ("", ".")]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        path = os.path.join(root, *resolved, part)
        if not os.path.islink(path):
            resolved.append(part)
            continue
        hops += 1
        if hops > _MAX_SYMLINKS:
            raise UnsafeEntry(f"too many levels of symbolic links under {name!r}")
        target = os.readlink(path)
        if target.startswith("/"):
            resolved = []
        parts = [p for p in target.split("/") if p not in ("", ".")] + parts
    return os.path.join(root, *resolved)


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
    def __init__(self, tar: tarfile.TarFile, dest: str) -> None:
        self.tar = tar
        self.dest = dest
        self.as_root = os.geteuid() == 0
        self.written: set[str] = set()  # this layer's own paths, which opaque whiteouts keep
        self.dir_times: list[tuple[str, int]] = []

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
        # Directory mtimes last: writing into a directory changes its mtime.
        for path, mtime in reversed(self.dir_times):
            os.utime(path, (mtime, mtime), follow_symlinks=False)

    def entry(self, member: tarfile.TarInfo) -> None:
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
            mtime = int(member.mtime)  # checked now, so that a bad one names its entry
            os.utime(path, (mtime, mtime), follow_symlinks=False)
            self.dir_times.append((path, mtime))
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
        self.finish(member, path)

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
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        with source, os.fdopen(os.open(path, flags, 0o600), "wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)

    def hardlink(self, member: tarfile.TarInfo, path: str) -> None:
        target_name = clean_name(member.linkname)
        parent_name, base = posixpath.split(target_name)
        target = os.path.join(secure_join(self.dest, parent_name), base)
        if not os.path.lexists(target) or os.path.isdir(target):
            raise UnsafeEntry(f"hard link {member.name!r} to missing {member.linkname!r}")
        _remove(path)
        os.link(target, path, follow_symlinks=False)

    def finish(self, member: tarfile.TarInfo, path: str) -> None:
        if self.as_root:
            os.lchown(path, member.uid, member.gid)
        if not member.issym():
            os.chmod(path, stat.S_IMODE(member.mode))  # after chown, which clears setuid bits
        if not member.isdir():
            os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)

    def opaque(self, directory: str) -> None:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            for child in os.listdir(directory):
                path = os.path.join(directory, child)
                if path not in self.written:
                    _remove(path)


def extract_layer(tar: tarfile.TarFile, dest: str) -> None:
    """Apply one layer onto ``dest`` (created if missing). Raises :class:`UnsafeEntry`."""
    os.makedirs(dest, exist_ok=True)
    _Extractor(tar, os.path.realpath(dest)).run()
