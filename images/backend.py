"""Provisioner backends: how a stack of extracted layers becomes one container root filesystem.

Two backends, chosen once by :func:`.backends.choose_backend` (STYLE rule 6), behind
:class:`Backend`:

- ``overlay`` (:mod:`.backend_overlay`): one overlay mount, the layers as read-only lower
  directories, a per-rootfs upper and work directory. Instant, and layers are shared on disk.
- ``copy`` (:mod:`.backend_copy`): every layer copied into the rootfs directory, bottom first.
  Works on any filesystem; costs the image's size per container.

Layers in the store are in overlayfs's own format (what Docker's ``overlay2`` keeps): a deleted
file is a 0/0 character device, an opaque directory carries ``trusted.overlay.opaque=y``. The
overlay backend hands them to the kernel as they are; the copy backend interprets them.

This module is also the seam to the kernel's mount table: ``mount(2)`` and ``umount2(2)`` through
libc, and ``/proc/self/mountinfo`` to find what is mounted under a directory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from typing import Protocol

from .errors import ProvisionError

log = logging.getLogger(__name__)

BACKENDS = ("overlay", "copy")
MNT_DETACH = 2
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class Backend(Protocol):
    name: str

    def provision(self, layers: Sequence[str], rootfs: str, scratch: str) -> None:
        """Stack ``layers`` (directories, bottom first) into ``rootfs``; blocking.

        ``scratch`` is a directory of this rootfs's own, removed with it, for what the
        backend needs besides the rootfs (the overlay upper and work directories)."""


def mount(source: str, target: str, fstype: str, options: str, flags: int = 0) -> None:
    if _libc.mount(source.encode(), target.encode(), fstype.encode(), flags,
                   options.encode()) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"mount -t {fstype} on {target}: {os.strerror(code)}")


def unmount(target: str) -> None:
    """Unmount ``target``; lazily (``MNT_DETACH``) when something still holds it busy."""
    if _libc.umount2(target.encode(), 0) == 0:
        return
    code = ctypes.get_errno()
    if code == errno.EBUSY and _libc.umount2(target.encode(), MNT_DETACH) == 0:
        log.warning("%s was busy; detached it lazily", target)
        return
    if code in (errno.EINVAL, errno.ENOENT):  # not (or no longer) a mount point
        return
    raise OSError(code, f"umount {target}: {os.strerror(code)}")


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash as \040, \011, \012, \134.
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_points_under(directory: str) -> list[str]:
    """Mount points at or below ``directory`` in this mount namespace, deepest first."""
    root = os.path.realpath(directory)
    found = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            point = _unescape(line.split()[4])
            if point == root or point.startswith(root + "/"):
                found.append(point)
    # Deepest first, and the later of two mounts on one point first (it hides the earlier).
    return [p for _, p in sorted(enumerate(found), key=lambda e: (-e[1].count("/"), -e[0]))]


def remove_tree(directory: str) -> None:
    """Unmount everything under ``directory``, then delete it; idempotent.

    Deleting through a mount would delete whatever it shows (a bind-mounted sandbox, a layer),
    so the tree is removed only once the mount table shows nothing left under it."""
    for point in mount_points_under(directory):
        try:
            unmount(point)
        except OSError as exc:
            raise ProvisionError(f"cannot unmount {point}: {exc.strerror}") from exc
    left = mount_points_under(directory)
    if left:
        raise ProvisionError(f"{directory} still has mounts ({', '.join(left)}); not removing it")
    shutil.rmtree(directory, ignore_errors=True)
    if os.path.lexists(directory):
        raise ProvisionError(f"cannot remove {directory}")


def overlay_works(upper_parent: str, lower_parent: str) -> bool:
    """Whether an overlay mount with lower directories in ``lower_parent`` and the upper one in
    ``upper_parent`` works here (module loaded, privileges, filesystems that can be upper)."""
    os.makedirs(upper_parent, exist_ok=True)
    os.makedirs(lower_parent, exist_ok=True)
    upper_probe = tempfile.mkdtemp(prefix=".overlay-probe-", dir=upper_parent)
    lower_probe = tempfile.mkdtemp(prefix=".overlay-probe-", dir=lower_parent)
    try:
        for name in ("upper", "work", "merged"):
            os.mkdir(os.path.join(upper_probe, name))
        merged = os.path.join(upper_probe, "merged")
        try:
            mount("overlay", merged, "overlay", f"lowerdir={lower_probe},"
                  f"upperdir={upper_probe}/upper,workdir={upper_probe}/work")
        except OSError as exc:
            log.info("overlay mounts do not work here (%s); using the copy backend", exc.strerror)
            return False
        unmount(merged)
        return True
    finally:
        remove_tree(upper_probe)
        shutil.rmtree(lower_probe, ignore_errors=True)
