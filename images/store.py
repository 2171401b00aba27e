"""The Docker image store in ``--docker_store_dir``: layers extracted once, shared by images.

::

    <store_dir>/
      layers/<layer_id>/rootfs/   one layer, in overlayfs's format (see backend.py)
      staging/<tmp>/<layer_id>/   a layer being fetched; renamed into layers/ when complete
      staging/<tmp>/scratch/      its download (a registry blob), deleted with <tmp>
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
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import gzip
import hashlib
import json
import logging
import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Coroutine
from typing import IO, Any, Protocol, TypeVar

from agent_runtime.errors import BadRequest
from agent_runtime.files import atomic_write

from .backend_copy import OPAQUE_XATTR
from .errors import BadArchive, DigestMismatch, ImageError, UnsafeEntry
from .extract import OPAQUE_WHITEOUT, WHITEOUT_PREFIX, extract_layer
from .image_config import RuntimeConfig
from .layer import clean_name
from .reference import Reference, parse_reference
from .rootpath import secure_join

log = logging.getLogger(__name__)

INDEX_VERSION = 1
PROGRESS_INTERVAL = 1.0  # seconds between two progress lines of one pull
_T = TypeVar("_T")
_LAYER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_DIFF_ID = re.compile(r"sha256:([0-9a-f]{64})")
V1_PREFIX = "v1-"  # old-layout layers: the archive's own, unverified, v1 id
BLOB_PREFIX = "blob-"  # schema1 layers: the hex of the (verified) blob digest
_GZIP_MAGIC = b"\x1f\x8b"


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
                 on_bytes: Callable[[int], None] = lambda count: None) -> None:
    """Extract one layer tar (gzip-compressed or not) read from ``source`` into ``rootfs``.

    One pass: the uncompressed bytes are hashed on the way and must match ``diff_id`` when one
    is given (:class:`DigestMismatch` names ``what`` and the digest). Entries are checked by
    :func:`extract_layer`; whiteouts are written in overlayfs's format."""
    magic = source.read(2)
    source.seek(0)
    plain: _Readable = gzip.GzipFile(fileobj=source) if magic == _GZIP_MAGIC else source
    reader = _CountingReader(plain, on_bytes)
    try:
        with _LayerTar.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
            extract_layer(tar, rootfs)
            for name in tar.whiteouts:
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


class Puller(Protocol):
    """Finds an image and fetches its layers. Both methods block; the store runs them in
    threads, several :meth:`fetch` calls at once."""

    def resolve(self, reference: Reference, given: str) -> Manifest: ...

    def fetch(self, manifest: Manifest, layer: LayerSource, rootfs: str, scratch: str,
              progress: Progress) -> None:
        """Unpack ``layer`` into ``rootfs`` (see :func:`unpack_layer`), verifying it;
        ``scratch`` is an empty directory for downloads, removed afterwards."""


@dataclasses.dataclass(frozen=True)
class StoredImage:
    reference: str  # normalised, the index key
    layers: tuple[str, ...]  # layer rootfs directories, bottom first
    config: RuntimeConfig


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
    def __init__(self, store_dir: str, puller: Puller) -> None:
        self.store_dir = store_dir
        self.layers_dir = os.path.join(store_dir, "layers")
        self.staging_dir = os.path.join(store_dir, "staging")
        self.index_path = os.path.join(store_dir, "storedImages")
        self.puller = puller
        self.layers_extracted = 0  # layers fetched by this process: shows sharing in tests
        self._index: dict[str, dict[str, Any]] | None = None  # loaded on first use
        self._index_lock = asyncio.Lock()
        self._pulls: dict[str, asyncio.Task[StoredImage]] = {}
        self._fetches: dict[str, asyncio.Task[None]] = {}

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

    async def _remember(self, image: StoredImage, layer_ids: list[str]) -> None:
        async with self._index_lock:
            index = await self._loaded_index()
            index[image.reference] = {"layers": layer_ids, "config": image.config.to_docker()}
            data = json.dumps({"version": INDEX_VERSION, "images": index}, indent=1,
                              sort_keys=True).encode()
            await asyncio.to_thread(atomic_write, self.index_path, data)

    def _cached(self, key: str, index: dict[str, dict[str, Any]]) -> StoredImage | None:
        entry = index.get(key)
        if not isinstance(entry, dict) or not isinstance(entry.get("layers"), list):
            return None
        layers = tuple(self.layer_path(str(layer)) for layer in entry["layers"])
        if not all(os.path.isdir(layer) for layer in layers):
            return None  # a layer was removed behind our back: pull again
        try:
            config = RuntimeConfig.from_docker(entry.get("config"))
        except ImageError:
            return None
        return StoredImage(reference=key, layers=layers, config=config)

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
        present = await asyncio.to_thread(lambda: [self._present(layer)
                                                   for layer in manifest.layers])
        missing = [layer for layer, here in zip(manifest.layers, present, strict=True)
                   if not here]
        unique = {layer.id: layer for layer in missing}
        progress = Progress(manifest, len(unique))
        results = await asyncio.gather(*(
            self._shared(self._fetches, layer_id,
                         functools.partial(self._fetch, manifest, layer, progress))
            for layer_id, layer in unique.items()), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        if missing:
            progress.finish()
        layer_ids = [layer.id for layer in manifest.layers]
        stored = StoredImage(reference=key, config=manifest.config,
                             layers=tuple(self.layer_path(layer_id) for layer_id in layer_ids))
        await self._remember(stored, layer_ids)
        return stored

    async def _fetch(self, manifest: Manifest, layer: LayerSource, progress: Progress) -> None:
        if await asyncio.to_thread(self._present, layer):
            return  # another image's pull brought it in meanwhile
        await asyncio.to_thread(self._fetch_blocking, manifest, layer, progress)
        self.layers_extracted += 1

    def _fetch_blocking(self, manifest: Manifest, layer: LayerSource,
                        progress: Progress) -> None:
        os.makedirs(self.staging_dir, exist_ok=True)
        os.makedirs(self.layers_dir, exist_ok=True)
        staging = tempfile.mkdtemp(dir=self.staging_dir)
        try:
            staged = os.path.join(staging, layer.id)
            scratch = os.path.join(staging, "scratch")
            os.makedirs(os.path.join(staged, "rootfs"))
            os.mkdir(scratch)
            self.puller.fetch(manifest, layer, os.path.join(staged, "rootfs"), scratch, progress)
            with open(os.path.join(staged, "json"), "w") as meta:
                json.dump({"id": layer.id, "diff_id": layer.diff_id, "source": layer.locator,
                           "image": manifest.reference}, meta)
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

    def status(self) -> dict[str, Any]:
        return {"store_dir": self.store_dir, "images": sorted(self._index or {}),
                "layers": len(os.listdir(self.layers_dir)) if os.path.isdir(self.layers_dir)
                else 0, "pulls_in_progress": sorted(self._pulls)}
