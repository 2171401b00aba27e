"""The overlay backend: the image's layers as the lower directories of one overlay mount.

::

    <container>/backends/overlay/rootfses/<uuid>          the overlay mount (the rootfs)
    <container>/backends/overlay/scratch/<uuid>/upperdir  what the container writes
    <container>/backends/overlay/scratch/<uuid>/workdir   overlayfs's own scratch space
    <container>/backends/overlay/scratch/<uuid>/links/    short names for the layers, when
                                                          their paths overflow the options
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from .backend import mount
from .errors import ProvisionError

# mount(2) copies at most one page of options; keep well under it.
_MAX_OPTIONS = 4000


class OverlayBackend:
    name = "overlay"

    def provision(self, layers: Sequence[str], rootfs: str, scratch: str) -> None:
        if not layers:
            raise ProvisionError("an image with no layers cannot be mounted")
        upper, work = os.path.join(scratch, "upperdir"), os.path.join(scratch, "workdir")
        for directory in (rootfs, upper, work):
            os.makedirs(directory, exist_ok=True)
        # overlayfs lists the top layer first. A layer repeated in the stack adds nothing above
        # its highest copy, so only that copy is kept: the kernel may refuse a repeated lower.
        lowers: list[str] = []
        for layer in reversed(layers):
            if layer not in lowers:
                lowers.append(layer)
        options = self._options(lowers, upper, work)
        if len(options) > _MAX_OPTIONS:
            # Mesos does the same: symlinks with short names, resolved once at mount time.
            links = os.path.join(scratch, "links")
            os.makedirs(links, exist_ok=True)
            short = []
            for index, layer in enumerate(lowers):
                link = os.path.join(links, str(index))
                os.symlink(layer, link)
                short.append(link)
            options = self._options(short, upper, work)
            if len(options) > _MAX_OPTIONS:
                raise ProvisionError(f"{len(lowers)} layers are too many for one overlay mount")
        try:
            mount("overlay", rootfs, "overlay", options)
        except OSError as exc:
            raise ProvisionError(f"cannot mount the overlay rootfs {rootfs}: {exc.strerror}"
                                 ) from exc

    @staticmethod
    def _options(lowers: Sequence[str], upper: str, work: str) -> str:
        for path in (*lowers, upper, work):
            if any(char in path for char in ",:\\"):  # the option syntax has no escapes
                raise ProvisionError(f"overlay cannot use the path {path!r} (',', ':' or '\\')")
        return f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work}"
