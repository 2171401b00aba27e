"""The seam between the store and its pullers: what a puller finds and how it reports.

A :class:`Puller` resolves a reference to a :class:`Manifest` and fetches one layer at a time
into a directory the store gives it; :class:`Progress` logs one pull's bytes and layers.
The pullers are ``ArchivePuller`` (``provisioner.py``) and ``RegistryPuller`` (``registry.py``).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Protocol

from .image_config import RuntimeConfig
from .limits import SizeBudget
from .reference import Reference

log = logging.getLogger(__name__)

PROGRESS_INTERVAL = 1.0  # seconds between two progress lines of one pull


@dataclasses.dataclass(frozen=True)
class LayerSource:
    id: str  # the store's name for it: diff_id hex, else "v1-<v1 id>" or "blob-<blob hex>"
    locator: str  # where the puller finds it: an archive member, a blob digest
    diff_id: str | None  # "sha256:<hex>" of the uncompressed tar, checked while unpacking
    size: int | None = None  # bytes to fetch, when known


@dataclasses.dataclass(frozen=True)
class Manifest:
    """What a puller found for a reference: where the image is, its layers and runtime config."""

    reference: str  # as the user gave it, for messages
    origin: str  # the archive path or registry repository URL
    layers: tuple[LayerSource, ...]  # bottom first
    config: RuntimeConfig


class Progress:
    """Bytes and layers of one pull, logged at most once a :data:`PROGRESS_INTERVAL`.

    Fetching threads call :meth:`add` and :meth:`layer_done`, so a lock guards the counters."""

    def __init__(self, manifest: Manifest, layers: int) -> None:
        self.manifest = manifest
        self.layers = layers
        self.bytes = 0
        self.done = 0
        self.started = time.monotonic()
        self._logged = self.started
        self._lock = threading.Lock()

    def add(self, count: int) -> None:
        with self._lock:
            self.bytes += count
            self._log(force=False)

    def layer_done(self) -> None:
        with self._lock:
            self.done += 1
            self._log(force=False)

    def _log(self, force: bool) -> None:
        now = time.monotonic()
        if force or now - self._logged >= PROGRESS_INTERVAL:
            self._logged = now
            total = sum(layer.size or 0 for layer in self.manifest.layers)
            of_total = f" of {total / 1e6:.1f}" if total else ""
            log.info("pulling %s from %s: %.1f%s MB, %d/%d layers, %.1fs",
                     self.manifest.reference, self.manifest.origin, self.bytes / 1e6, of_total,
                     self.done, self.layers, now - self.started)

    def finish(self) -> None:
        with self._lock:
            self._log(force=True)


class Puller(Protocol):
    """Finds an image and fetches its layers. Both methods block; the store runs them in
    threads, several :meth:`fetch` calls at once."""

    def resolve(self, reference: Reference, given: str) -> Manifest: ...

    def fetch(self, manifest: Manifest, layer: LayerSource, rootfs: str, scratch: str,
              progress: Progress, budget: SizeBudget) -> None:
        """Unpack ``layer`` into ``rootfs`` (see :func:`unpack_layer`), verifying it and
        charging ``budget`` for what it writes; ``scratch`` is an empty directory for
        downloads, removed afterwards."""
