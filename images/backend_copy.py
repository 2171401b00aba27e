"""The copy backend: every layer copied into the rootfs directory, bottom first.

Layers are in overlayfs's format (see :mod:`.backend`), so the copy applies what the kernel would
when stacking them: a 0/0 character device deletes the path from the layers below, and an opaque
directory (``trusted.overlay.opaque=y``) hides everything the layers below put in it.

Every path is written into a directory this copy has just made sure is a real directory, never
through a symlink, so a link in one layer cannot redirect another layer's files onto the host.
Hard links within a layer stay hard links; ownership, modes and times are kept.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Sequence

from .errors import ProvisionError

OPAQUE_XATTR = "trusted.overlay.opaque"


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def _empty(directory: str) -> None:
    for entry in os.scandir(directory):
        _remove(entry.path)


class _LayerCopy:
    def __init__(self) -> None:
        self.as_root = os.geteuid() == 0
        self.links: dict[tuple[int, int], str] = {}  # (dev, inode) in the layer -> first copy

    def directory(self, source: str, dest: str) -> None:
        for entry in os.scandir(source):
            self.entry(entry.path, os.path.join(dest, entry.name))

    def entry(self, source: str, dest: str) -> None:
        st = os.lstat(source)
        if is_whiteout(st):
            _remove(dest)
            return
        if stat.S_ISDIR(st.st_mode):
            if not (os.path.isdir(dest) and not os.path.islink(dest)):
                _remove(dest)
                os.mkdir(dest)
            elif is_opaque(source):
                _empty(dest)
            self.directory(source, dest)
            self.metadata(st, dest)
            return
        _remove(dest)
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in self.links:
            os.link(self.links[key], dest, follow_symlinks=False)
            return
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(source), dest)
        elif stat.S_ISREG(st.st_mode):
            shutil.copyfile(source, dest, follow_symlinks=False)
        elif stat.S_ISFIFO(st.st_mode):
            os.mkfifo(dest)
        else:
            return  # device nodes: the store never keeps any but whiteouts
        if st.st_nlink > 1:
            self.links[key] = dest
        self.metadata(st, dest)

    def metadata(self, st: os.stat_result, dest: str) -> None:
        if self.as_root:
            os.lchown(dest, st.st_uid, st.st_gid)
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(dest, stat.S_IMODE(st.st_mode))  # after chown, which clears setuid bits
        os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


class CopyBackend:
    name = "copy"

    def provision(self, layers: Sequence[str], rootfs: str, scratch: str) -> None:
        os.makedirs(rootfs, exist_ok=True)
        for layer in layers:
            try:
                _LayerCopy().directory(layer, rootfs)
            except OSError as exc:
                raise ProvisionError(f"cannot copy layer {layer} into {rootfs}: "
                                     f"{exc.strerror or exc}") from exc
