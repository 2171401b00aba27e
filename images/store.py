"""The Docker image store in ``--docker_store_dir``: layers extracted once, shared by images.

::

    <store_dir>/
      layers/<layer_id>/rootfs/   one layer, in overlayfs's format (see backend.py)
      layers/<layer_id>/json      {id, diff_id, source, image, size}: size is what it unpacked to
      staging/<tmp>/<layer_id>/   a layer being fetched; renamed into layers/ when complete
      staging/<tmp>/scratch/      its download (a registry blob), deleted with <tmp>
      staging/pruned-<tmp>/       layers :meth:`Store.prune` set aside, being deleted
      storedImages                {"version": 1, "images": {reference: {layers, config}}}

A layer's id is the hex of its ``diff_id`` (the sha256 of its uncompressed tar) when the image
records one, so one layer pulled from an archive or from a registry is extracted once. Only those
ids are verified: the layer was checked against its diff_id when it was stored, and its ``json``
says so. Images without diff_ids use ids in namespaces of their own, which a diff_id's 64 hex
digits can never spell: ``v1-<v1 id>`` for the old ``docker save`` layout (an id the archive
chooses, checked against nothing, so it must never stand in for a verified layer) and
``blob-<hex>`` for schema1 manifests (the blob digest, checked while downloading). A verified
lookup also checks the layer's ``json``, so a directory left under a hex name by an older store
that did not keep the namespaces apart is fetched again rather than trusted.

A layer appears in ``layers/`` only complete, by rename, so a crash leaves at worst a stale
``staging/`` entry, which :meth:`Store.recover` removes.

Pulls are shared: a second request for an image, or for a layer, that is already being fetched
waits for the first one. The index caches by normalised reference; an image is pulled again only
when it is not in the index or one of its layers has gone missing.

Layers are unpacked against size budgets (``limits.py``): a layer or image over its cap fails the
pull, and the partial layer goes with its staging directory, as on any other error.

:meth:`Store.prune` is Mesos's image garbage collection, a mark and sweep: images the caller
still uses are kept with their layers, everything else goes. One lock (``_gate``) orders it
against pulls: a pull notes its layers as in flight, and checks which it already has, under it;
a prune picks and moves aside what it deletes under it. So a prune never takes a layer a pull
has found, and a pull never counts on a layer a prune is taking.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from agent_runtime.errors import BadRequest
from agent_runtime.files import atomic_write
from agent_runtime.flags import Bytes

from .errors import BadArchive, ImageError, ImageTooLarge
from .image_config import RuntimeConfig
from .limits import IMAGE_FLAG, LAYER_FLAG, NO_LIMITS, SizeBudget, SizeLimits
from .pull import LayerSource, Manifest, Progress, Puller
from .reference import Reference, parse_reference

log = logging.getLogger(__name__)

INDEX_VERSION = 1
_T = TypeVar("_T")
_LAYER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_DIFF_ID = re.compile(r"sha256:([0-9a-f]{64})")
V1_PREFIX = "v1-"  # old-layout layers: the archive's own, unverified, v1 id
BLOB_PREFIX = "blob-"  # schema1 layers: the hex of the (verified) blob digest


@dataclasses.dataclass(frozen=True)
class StoredImage:
    reference: str  # normalised, the index key
    layers: tuple[str, ...]  # layer rootfs directories, bottom first
    config: RuntimeConfig
    layer_ids: tuple[str, ...] = ()  # the layers' names in layers/, bottom first


@dataclasses.dataclass(frozen=True)
class Usage:
    """What a prune must keep: images by reference (as given, or normalised) and layer ids."""

    images: frozenset[str]
    layers: frozenset[str]


@dataclasses.dataclass(frozen=True)
class Pruned:
    images: tuple[str, ...]  # index keys forgotten
    layers: tuple[str, ...]  # layer ids deleted
    size: int  # what those layers had unpacked to, as their json recorded it


def image_key(image: str) -> str | None:
    """The index key of a reference (``busybox`` -> ``docker.io/library/busybox:latest``, as
    :func:`parse_reference` writes it), or ``None`` for one that cannot name an image."""
    try:
        return str(parse_reference(image))
    except BadRequest:
        return None


def _check_layer_id(layer: LayerSource, given: str, origin: str) -> None:
    """Keep verified and unverified layers apart in ``layers/``: a layer with a diff_id is
    named by its hex, any other by an id with a prefix (``v1-``, ``blob-``), never 64 hex."""
    if not _LAYER_ID.fullmatch(layer.id):  # it names a directory in layers/
        raise BadArchive(f"image {given!r}: bad layer id {layer.id!r} in {origin}")
    if layer.diff_id is not None:
        match = _DIFF_ID.fullmatch(layer.diff_id)
        if match is None:
            raise BadArchive(f"image {given!r}: bad diff_id {layer.diff_id!r} in {origin} "
                             "(not sha256:<64 lowercase hex digits>)")
        if layer.id != match.group(1):
            raise BadArchive(f"image {given!r}: layer id {layer.id!r} is not the hex of its "
                             f"diff_id {layer.diff_id} in {origin}")
    elif not layer.id.startswith((V1_PREFIX, BLOB_PREFIX)):
        raise BadArchive(f"image {given!r}: layer {layer.id!r} in {origin} has no diff_id, so "
                         f"its id must start with {V1_PREFIX!r} or {BLOB_PREFIX!r}")


class Store:
    def __init__(self, store_dir: str, puller: Puller, limits: SizeLimits = NO_LIMITS) -> None:
        self.store_dir = store_dir
        self.layers_dir = os.path.join(store_dir, "layers")
        self.staging_dir = os.path.join(store_dir, "staging")
        self.index_path = os.path.join(store_dir, "storedImages")
        self.puller = puller
        self.limits = limits
        self.layers_extracted = 0  # layers fetched by this process: shows sharing in tests
        self._index: dict[str, dict[str, Any]] | None = None  # loaded on first use
        self._index_lock = asyncio.Lock()
        self._pulls: dict[str, asyncio.Task[StoredImage]] = {}
        self._fetches: dict[str, asyncio.Task[None]] = {}
        self._gate = asyncio.Lock()  # orders prunes against pulls: see the module docstring
        self._pulling: collections.Counter[str] = collections.Counter()  # layer ids in flight

    def layer_path(self, layer_id: str) -> str:
        return os.path.join(self.layers_dir, layer_id, "rootfs")

    def _present(self, layer: LayerSource) -> bool:
        """Whether ``layer`` is in ``layers/``: for one with a diff_id, only when its ``json``
        records that diff_id, i.e. it was verified against it when it was stored."""
        if not os.path.isdir(self.layer_path(layer.id)):
            return False
        if layer.diff_id is None:
            return True
        try:
            with open(os.path.join(self.layers_dir, layer.id, "json"), "rb") as handle:
                meta = json.load(handle)
        except (OSError, ValueError):
            return False
        return isinstance(meta, dict) and meta.get("diff_id") == layer.diff_id

    def _layer_size(self, layer_id: str) -> int:
        """What the layer unpacked to, from its ``json``; 0 when an older store did not say."""
        try:
            with open(os.path.join(self.layers_dir, layer_id, "json"), "rb") as handle:
                meta = json.load(handle)
        except (OSError, ValueError):
            return 0
        size = meta.get("size") if isinstance(meta, dict) else None
        return size if isinstance(size, int) and size >= 0 else 0

    # The index -------------------------------------------------------------------------------

    def _read_index(self) -> dict[str, dict[str, Any]]:
        try:
            with open(self.index_path, "rb") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring the unreadable image index %s: %s", self.index_path, exc)
            return {}
        if not isinstance(data, dict) or data.get("version") != INDEX_VERSION:
            log.warning("ignoring the image index %s: unknown version", self.index_path)
            return {}
        images = data.get("images")
        return images if isinstance(images, dict) else {}

    async def _loaded_index(self) -> dict[str, dict[str, Any]]:
        if self._index is None:
            self._index = await asyncio.to_thread(self._read_index)
        return self._index

    async def _write_index(self, index: dict[str, dict[str, Any]]) -> None:
        data = json.dumps({"version": INDEX_VERSION, "images": index}, indent=1,
                          sort_keys=True).encode()
        await asyncio.to_thread(atomic_write, self.index_path, data)

    async def _remember(self, image: StoredImage) -> None:
        async with self._index_lock:
            index = await self._loaded_index()
            index[image.reference] = {"layers": list(image.layer_ids),
                                      "config": image.config.to_docker()}
            await self._write_index(index)

    def _cached(self, key: str, index: dict[str, dict[str, Any]]) -> StoredImage | None:
        entry = index.get(key)
        if not isinstance(entry, dict) or not isinstance(entry.get("layers"), list):
            return None
        layer_ids = tuple(str(layer) for layer in entry["layers"])
        layers = tuple(self.layer_path(layer_id) for layer_id in layer_ids)
        if not all(os.path.isdir(layer) for layer in layers):
            return None  # a layer was removed behind our back: pull again
        try:
            config = RuntimeConfig.from_docker(entry.get("config"))
        except ImageError:
            return None
        return StoredImage(reference=key, layers=layers, config=config, layer_ids=layer_ids)

    # Getting images --------------------------------------------------------------------------

    async def recover(self) -> None:
        """Load the index and drop what a crash left half-fetched in ``staging/``."""
        await asyncio.to_thread(shutil.rmtree, self.staging_dir, True)
        await self._loaded_index()

    async def get(self, image: str) -> StoredImage:
        """The image, from the store or pulled now; raises :class:`ImageError`."""
        try:
            reference = parse_reference(image)
        except BadRequest as exc:
            raise ImageError(str(exc)) from exc
        key = str(reference)
        cached = self._cached(key, await self._loaded_index())
        if cached is not None:
            return cached
        return await self._shared(self._pulls, key, lambda: self._pull(reference, image, key))

    @staticmethod
    async def _shared(tasks: dict[str, asyncio.Task[_T]], key: str,
                      start: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
        """Run ``start()`` once per key at a time; later callers wait on the first one's task.
        The task is shielded, so a cancelled caller does not cancel it for the others."""
        task = tasks.get(key)
        if task is None:
            task = asyncio.create_task(start())
            tasks[key] = task
            task.add_done_callback(lambda done: tasks.pop(key, None))
        return await asyncio.shield(task)

    async def _pull(self, reference: Reference, given: str, key: str) -> StoredImage:
        manifest = await asyncio.to_thread(self.puller.resolve, reference, given)
        for layer in manifest.layers:
            _check_layer_id(layer, given, manifest.origin)
        layer_ids = [layer.id for layer in manifest.layers]
        async with self._gate:
            present = await asyncio.to_thread(
                lambda: [(self._present(layer), self._layer_size(layer.id))
                         for layer in manifest.layers])
            self._pulling.update(layer_ids)
        try:
            missing = [layer for layer, (here, _) in zip(manifest.layers, present, strict=True)
                       if not here]
            unique = {layer.id: layer for layer in missing}
            progress = Progress(manifest, len(unique))
            image_budget = SizeBudget(self.limits.max_image, f"image {given!r}", IMAGE_FLAG,
                                      used=sum(size for here, size in present if here))
            results = await asyncio.gather(*(
                self._shared(self._fetches, layer_id, functools.partial(
                    self._fetch, manifest, layer, progress, image_budget))
                for layer_id, layer in unique.items()), return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            if missing:
                progress.finish()
            # Again, from every layer's json: layers another pull fetched were not charged here.
            total = sum(await asyncio.to_thread(lambda: [self._layer_size(layer_id)
                                                         for layer_id in layer_ids]))
            if total > self.limits.max_image:
                raise ImageTooLarge(f"image {given!r} unpacks to {Bytes(total).mesos()}, more "
                                    f"than {Bytes(self.limits.max_image).mesos()} "
                                    f"({IMAGE_FLAG})")
            stored = StoredImage(reference=key, config=manifest.config,
                                 layers=tuple(self.layer_path(layer_id)
                                              for layer_id in layer_ids),
                                 layer_ids=tuple(layer_ids))
            await self._remember(stored)
            return stored
        finally:
            self._pulling.subtract(layer_ids)
            self._pulling = +self._pulling  # drops the ids no pull needs any more

    async def _fetch(self, manifest: Manifest, layer: LayerSource, progress: Progress,
                     image_budget: SizeBudget) -> None:
        if await asyncio.to_thread(self._present, layer):
            return  # another image's pull brought it in meanwhile
        budget = image_budget.child(self.limits.max_layer,
                                    f"image {manifest.reference!r}: layer {layer.locator}",
                                    LAYER_FLAG)
        await asyncio.to_thread(self._fetch_blocking, manifest, layer, progress, budget)
        self.layers_extracted += 1

    def _fetch_blocking(self, manifest: Manifest, layer: LayerSource, progress: Progress,
                        budget: SizeBudget) -> None:
        """Fetch into a staging directory and rename it into ``layers/`` when complete; on any
        error (a cap hit half way included) the staging directory and the partial layer in it
        are deleted, so ``layers/`` never holds one."""
        os.makedirs(self.staging_dir, exist_ok=True)
        os.makedirs(self.layers_dir, exist_ok=True)
        staging = tempfile.mkdtemp(dir=self.staging_dir)
        try:
            staged = os.path.join(staging, layer.id)
            scratch = os.path.join(staging, "scratch")
            os.makedirs(os.path.join(staged, "rootfs"))
            os.mkdir(scratch)
            self.puller.fetch(manifest, layer, os.path.join(staged, "rootfs"), scratch, progress,
                              budget)
            with open(os.path.join(staged, "json"), "w") as meta:
                json.dump({"id": layer.id, "diff_id": layer.diff_id, "source": layer.locator,
                           "image": manifest.reference, "size": budget.used}, meta)
            final = os.path.join(self.layers_dir, layer.id)
            if os.path.lexists(final) and not self._present(layer):
                # Not verified against this diff_id (left by an older store): set it aside, to
                # be deleted with the staging directory, rather than use it.
                log.warning("replacing the unverified layer %s in %s", layer.id, self.layers_dir)
                os.rename(final, os.path.join(staging, "stale"))
            try:
                os.rename(staged, final)
            except OSError:
                if not self._present(layer):  # else: another process won
                    raise
            progress.layer_done()
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    # Garbage collection ----------------------------------------------------------------------

    async def prune(self, usage: Callable[[], Usage]) -> Pruned:
        """Forget every image but those ``usage()`` names and those being pulled, then delete
        every layer no remaining image, pull or ``usage().layers`` needs.

        ``usage`` is called once both locks are held, with no await before the index changes,
        so an image a container starts using meanwhile is either in it or pulled afresh."""
        async with self._gate, self._index_lock:
            index = await self._loaded_index()
            used = usage()
            keep = {image_key(image) for image in used.images} | set(self._pulls)
            gone = sorted(key for key in index if key not in keep)
            for key in gone:
                del index[key]
            needed = set(used.layers) | set(self._pulling) | {
                str(layer_id) for entry in index.values() if isinstance(entry, dict)
                for layer_id in entry.get("layers") or ()}
            if gone:
                await self._write_index(index)
            trash, layers, size = await asyncio.to_thread(self._set_aside, needed)
        if trash is not None:
            await asyncio.to_thread(shutil.rmtree, trash, True)
        return Pruned(images=tuple(gone), layers=tuple(layers), size=size)

    def _set_aside(self, needed: set[str]) -> tuple[str | None, list[str], int]:
        """Move the layers not ``needed`` out of ``layers/`` (a rename each, so the lock is
        held briefly); the caller deletes them after. A crash leaves them in ``staging/``."""
        try:
            doomed = sorted(set(os.listdir(self.layers_dir)) - needed)
        except FileNotFoundError:
            return None, [], 0
        if not doomed:
            return None, [], 0
        os.makedirs(self.staging_dir, exist_ok=True)
        trash = tempfile.mkdtemp(prefix="pruned-", dir=self.staging_dir)
        size = 0
        for layer_id in doomed:
            size += self._layer_size(layer_id)
            os.rename(os.path.join(self.layers_dir, layer_id), os.path.join(trash, layer_id))
        return trash, doomed, size

    def status(self) -> dict[str, Any]:
        return {"store_dir": self.store_dir, "images": sorted(self._index or {}),
                "layers": len(os.listdir(self.layers_dir)) if os.path.isdir(self.layers_dir)
                else 0, "pulls_in_progress": sorted(self._pulls)}
