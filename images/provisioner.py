"""The Mesos containerizer's provisioner: a container's image becomes a root filesystem.

::

    provisioner = Provisioner(work_dir, store_dir, registry="/var/lib/mesos/images")
    await provisioner.recover(known=running_container_ids)
    provisioned = await provisioner.provision(container_id, "redis")
    provisioned.rootfs       # a directory to pivot_root into; provisioned.config: Cmd, Env...
    await provisioner.destroy(container_id)

The image comes from the :class:`~.store.Store` (pulled once, layers shared), through one puller
picked from ``--docker_registry``: a directory of ``docker save`` archives (Mesos's tar puller,
:class:`ArchivePuller`) or a Registry v2 URL (:class:`~.registry.RegistryPuller`). The rootfs is
then stacked by one backend, chosen once (:func:`~.backends.choose_backend`). Disk layout, as in
Mesos::

    <work_dir>/provisioner/containers/<container_id>/backends/<backend>/rootfses/<uuid>
    <work_dir>/provisioner/containers/<container_id>/backends/<backend>/scratch/<uuid>/
    <work_dir>/provisioner/containers/<container_id>/images   {"version", "images", "layers"}

With the overlay backend the rootfs is a mount point; with copy it is a plain directory.
:meth:`Provisioner.destroy` unmounts whatever is mounted under the container's directory before
deleting it, whichever backend made it, so a restart with another backend still cleans up.

Image garbage collection (:meth:`Provisioner.prune_images`, and every so often with
``--image_gc_config``, see ``gc.py``) must never take a layer a container's rootfs stacks. So
a container's image is noted in memory before its pull starts, its layers once the store has
them, and both are written to its ``images`` file before the rootfs is stacked; a restarted
agent reads them back. A container from before those files, whose layers are unknown, stops
pruning until it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import tarfile
import time
import uuid
from collections.abc import Collection, Sequence
from typing import Any

from agent_runtime.files import atomic_write
from agent_runtime.flags import Bytes

from .archive import DockerArchive
from .backend import BACKENDS, Backend, remove_tree
from .backends import choose_backend
from .errors import BadArchive, ImageError, ImageNotFound, ProvisionError
from .gc import ImageGcConfig, free_fraction
from .image_config import RuntimeConfig
from .layer import clean_name
from .limits import NO_LIMITS, SizeBudget, SizeLimits
from .pull import LayerSource, Manifest, Progress, Puller
from .reference import Reference
from .registry import DOCKER_HUB, RegistryPuller
from .store import V1_PREFIX, Pruned, Store, Usage
from .unpack import unpack_layer

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Provisioned:
    rootfs: str  # the image's root filesystem: an overlay mount point, or a copied directory
    config: RuntimeConfig


class ArchivePuller:
    """Images from ``<directory>/<reference>.tar`` (Mesos's ``image_tar_puller``).

    The reference is used as the user wrote it (``busybox:latest`` -> ``busybox:latest.tar``,
    ``library/redis`` -> ``library/redis.tar``), then normalised, with the tag and without it,
    so ``redis``, ``redis:latest`` and ``library/redis`` all find ``redis.tar``."""

    def __init__(self, directory: str) -> None:
        self.directory = os.path.realpath(directory)

    def candidates(self, reference: Reference, given: str) -> list[str]:
        names = [given.strip(), f"{reference.name}:{reference.tag}", reference.name]
        if not reference.registry and "/" not in reference.repository:
            names += [f"library/{reference.repository}:{reference.tag}",
                      f"library/{reference.repository}"]
        paths: list[str] = []
        for name in names:
            path = os.path.normpath(os.path.join(self.directory, f"{name}.tar"))
            # A registry part such as ".." would climb out of the directory.
            if path.startswith(self.directory + os.sep) and path not in paths:
                paths.append(path)
        return paths

    def resolve(self, reference: Reference, given: str) -> Manifest:
        paths = self.candidates(reference, given)
        path = next((p for p in paths if os.path.isfile(p)), None)
        if path is None:
            tried = ", ".join(os.path.relpath(p, self.directory) for p in paths)
            raise ImageNotFound(f"image {given!r} not found: no {tried} in {self.directory}")
        try:
            with DockerArchive(path) as archive:
                image = archive.image(given)
        except BadArchive as exc:
            raise BadArchive(f"image {given!r}: {exc}") from exc
        # A layer without a diff_id (the old layout) keeps the archive's v1 id, which nothing
        # verifies: in a namespace of its own, so that it can never pose as a verified layer.
        layers = tuple(LayerSource(id=layer.diff_id.partition(":")[2] if layer.diff_id
                                   else f"{V1_PREFIX}{layer.id}", locator=layer.member,
                                   diff_id=layer.diff_id)
                       for layer in image.layers)
        return Manifest(reference=given, origin=path, layers=layers, config=image.config)

    def fetch(self, manifest: Manifest, layer: LayerSource, rootfs: str, scratch: str,
              progress: Progress, budget: SizeBudget) -> None:
        what = f"image {manifest.reference!r}: layer {layer.locator} of {manifest.origin}"
        try:
            with tarfile.open(manifest.origin) as archive:
                member = next((m for m in archive.getmembers()
                               if clean_name(m.name) == layer.locator and m.isreg()), None)
                source = archive.extractfile(member) if member is not None else None
                if source is None:
                    raise BadArchive(f"{what}: no such file in the archive")
                with source:
                    unpack_layer(source, rootfs, layer.diff_id, what, progress.add,
                                 budget.charge)
        except tarfile.TarError as exc:
            raise BadArchive(f"{what}: {exc}") from exc


def make_puller(registry: str | None, docker_config: str | None) -> Puller:
    if registry is None:
        return RegistryPuller(DOCKER_HUB, docker_config)
    if registry.startswith("/"):
        return ArchivePuller(registry)
    if registry.startswith(("http://", "https://")):
        return RegistryPuller(registry, docker_config)
    if "://" in registry:
        raise ProvisionError(f"--docker_registry {registry!r}: only a directory, http:// "
                             "and https:// are supported")
    return RegistryPuller(f"https://{registry}", docker_config)


_RECORD_VERSION = 1
_UNUSED = Usage(frozenset(), frozenset())


def _merge(a: Usage, b: Usage) -> Usage:
    return Usage(a.images | b.images, a.layers | b.layers)


def _check_container_id(container_id: str) -> None:
    if not container_id or "/" in container_id or container_id in (".", "..") \
            or "\0" in container_id:
        raise ProvisionError(f"container id {container_id!r} cannot name a directory")


@dataclasses.dataclass(frozen=True)
class ProvisionerConfig:
    """What the agent's flags say about images (built by ``agent/composition.py``)."""

    work_dir: str  # --work_dir: rootfses under <work_dir>/provisioner
    store_dir: str  # --docker_store_dir
    registry: str | None = None  # --docker_registry: a directory of archives or a URL
    docker_config: str | None = None  # --docker_config: a path or the JSON itself
    limits: SizeLimits = NO_LIMITS  # --image_max_layer_size, --image_max_size
    gc: ImageGcConfig | None = None  # --image_gc_config
    backend: str | None = None  # None: overlay when the kernel allows it, else copy


class Provisioner:
    @classmethod
    def from_config(cls, config: ProvisionerConfig) -> Provisioner:
        return cls(config.work_dir, config.store_dir, config.registry, backend=config.backend,
                   docker_config=config.docker_config, limits=config.limits, gc=config.gc)

    def __init__(self, work_dir: str, store_dir: str, registry: str | None,
                 backend: str | None = None, docker_config: str | None = None,
                 limits: SizeLimits = NO_LIMITS, gc: ImageGcConfig | None = None) -> None:
        if backend is not None and backend not in BACKENDS:
            raise ProvisionError(f"unknown provisioner backend {backend!r} "
                                 f"(known: {', '.join(BACKENDS)})")
        self.root = os.path.join(work_dir, "provisioner")
        self.containers_dir = os.path.join(self.root, "containers")
        self.store_dir = store_dir
        self.store = Store(store_dir, make_puller(registry, docker_config), limits)
        self.gc = gc
        self._uses: dict[str, Usage] = {}  # container id -> the images and layers it uses
        self._unaccounted: set[str] = set()  # recovered containers whose layers are unknown
        self._gc_task: asyncio.Task[None] | None = None
        self._backend_name = backend
        self._backend: Backend | None = None  # chosen on first use: the probe mounts
        self._backend_lock = asyncio.Lock()

    async def backend(self) -> Backend:
        """The backend, chosen (and overlay probed) once."""
        async with self._backend_lock:
            if self._backend is None:
                self._backend = await asyncio.to_thread(
                    choose_backend, self._backend_name, self.root, self.store_dir)
                log.info("provisioner backend: %s", self._backend.name)
            return self._backend

    def container_dir(self, container_id: str) -> str:
        _check_container_id(container_id)
        return os.path.join(self.containers_dir, container_id)

    async def provision(self, container_id: str, image: str) -> Provisioned:
        """Pull ``image`` if needed and stack it into a new rootfs for ``container_id``."""
        started = time.monotonic()
        container_dir = self.container_dir(container_id)
        before = self._uses.get(container_id, _UNUSED)
        # Noted before the pull, so that a prune meanwhile keeps the image (see the docstring).
        self._uses[container_id] = _merge(before, Usage(frozenset({image}), frozenset()))
        try:
            provisioned = await self._provision(container_id, image, container_dir)
        except BaseException:
            if before is _UNUSED:
                self._uses.pop(container_id, None)
            else:
                self._uses[container_id] = before
            raise
        log.info("provisioned %s for container %s with %s in %.2fs", image, container_id,
                 self._backend.name if self._backend else "?", time.monotonic() - started)
        return provisioned

    async def _provision(self, container_id: str, image: str, container_dir: str
                         ) -> Provisioned:
        try:
            stored = await self.store.get(image)
        except ImageError:
            raise
        except OSError as exc:
            raise ProvisionError(f"image {image!r}: {exc.strerror or exc} "
                                 f"({exc.filename or self.store_dir})") from exc
        except Exception as exc:
            # A backstop: image data we did not foresee must still fail the task cleanly,
            # with an ImageError, not crash the caller. The traceback goes to the log.
            log.exception("unexpected error pulling image %r", image)
            raise ProvisionError(f"image {image!r}: cannot pull it: unexpected "
                                 f"{type(exc).__name__}: {exc}") from exc
        use = _merge(self._uses.get(container_id, _UNUSED),
                     Usage(frozenset({image}), frozenset(stored.layer_ids)))
        self._uses[container_id] = use
        try:
            await asyncio.to_thread(self._record, container_dir, use)
        except OSError as exc:
            raise ProvisionError(f"image {image!r} for container {container_id}: cannot record "
                                 f"its layers: {exc.strerror or exc}") from exc
        backend = await self.backend()
        rootfs_id = str(uuid.uuid4())
        backend_dir = os.path.join(container_dir, "backends", backend.name)
        rootfs = os.path.join(backend_dir, "rootfses", rootfs_id)
        scratch = os.path.join(backend_dir, "scratch", rootfs_id)
        try:
            await asyncio.to_thread(self._stack, backend, stored.layers, rootfs, scratch)
        except Exception as exc:
            if not isinstance(exc, (ImageError, OSError)):
                log.exception("unexpected error stacking image %r for container %s", image,
                              container_id)
            await asyncio.to_thread(remove_tree, rootfs)
            await asyncio.to_thread(remove_tree, scratch)
            raise ProvisionError(f"image {image!r} for container {container_id}: {exc}") from exc
        return Provisioned(rootfs=rootfs, config=stored.config)

    @staticmethod
    def _stack(backend: Backend, layers: tuple[str, ...], rootfs: str, scratch: str) -> None:
        os.makedirs(scratch, exist_ok=True)
        os.makedirs(rootfs, exist_ok=True)
        backend.provision(layers, rootfs, scratch)

    async def destroy(self, container_id: str) -> None:
        """Unmount and delete every rootfs of ``container_id``; idempotent."""
        container_dir = self.container_dir(container_id)
        await asyncio.to_thread(remove_tree, container_dir)
        # Only once nothing is mounted from its layers may a prune take them.
        self._uses.pop(container_id, None)
        self._unaccounted.discard(container_id)

    async def recover(self, known: Collection[str]) -> None:
        """Load the store's index, destroy the rootfses of containers not in ``known``, read
        back what the others use, and start watching the disk if ``--image_gc_config`` says."""
        await self.store.recover()
        try:
            present = await asyncio.to_thread(os.listdir, self.containers_dir)
        except FileNotFoundError:
            present = []
        for container_id in sorted(set(present) - set(known)):
            log.info("removing the rootfses of unknown container %s", container_id)
            await self.destroy(container_id)
        for container_id in sorted(set(present) & set(known)):
            use = await asyncio.to_thread(self._read_record, self.container_dir(container_id))
            if use is None:
                log.warning("container %s has no record of its image layers: no image will be "
                            "pruned while it runs", container_id)
                self._unaccounted.add(container_id)
            else:
                self._uses[container_id] = use
        if self.gc is not None and self._gc_task is None:
            self._gc_task = asyncio.create_task(self._watch_disk(self.gc))

    async def close(self) -> None:
        if self._gc_task is not None:
            self._gc_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._gc_task
            self._gc_task = None

    # Image garbage collection ----------------------------------------------------------------

    @staticmethod
    def _record(container_dir: str, use: Usage) -> None:
        os.makedirs(container_dir, exist_ok=True)
        data = {"version": _RECORD_VERSION, "images": sorted(use.images),
                "layers": sorted(use.layers)}
        atomic_write(os.path.join(container_dir, "images"), json.dumps(data).encode())

    @staticmethod
    def _read_record(container_dir: str) -> Usage | None:
        try:
            with open(os.path.join(container_dir, "images"), "rb") as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("version") != _RECORD_VERSION:
            return None
        images, layers = data.get("images"), data.get("layers")
        if not isinstance(images, list) or not isinstance(layers, list):
            return None
        return Usage(frozenset(map(str, images)), frozenset(map(str, layers)))

    def _usage(self, excluded: Sequence[str]) -> Usage:
        """What live and starting containers use, plus the images never to prune."""
        use = Usage(frozenset(excluded) | frozenset(self.gc.excluded_images if self.gc else ()),
                    frozenset())
        for container_use in self._uses.values():
            use = _merge(use, container_use)
        return use

    async def prune_images(self, excluded: Sequence[str] = ()) -> Pruned:
        """Remove the images and layers no container uses, except ``excluded`` (and the
        ``--image_gc_config`` exclusions); nothing while a container's layers are unknown."""
        if self._unaccounted:
            log.warning("not pruning images: the layers of containers %s are not recorded "
                        "(provisioned by an older agent)", ", ".join(sorted(self._unaccounted)))
            return Pruned(images=(), layers=(), size=0)
        pruned = await self.store.prune(lambda: self._usage(excluded))
        log.info("pruned %d images and %d layers (%s) from %s", len(pruned.images),
                 len(pruned.layers), Bytes(pruned.size).mesos(), self.store_dir)
        return pruned

    async def _watch_disk(self, gc: ImageGcConfig) -> None:
        """Every ``gc.interval``: prune when the store's disk has less than its headroom free."""
        while True:
            await asyncio.sleep(gc.interval)
            try:
                if not os.path.isdir(self.store_dir):
                    continue  # nothing pulled yet
                free = await asyncio.to_thread(free_fraction, self.store_dir)
                if free < gc.headroom:
                    log.info("%.1f%% of the disk of %s is free, less than the headroom of "
                             "%.1f%%: pruning images", free * 100, self.store_dir,
                             gc.headroom * 100)
                    await self.prune_images()
            except Exception:  # the watch must go on; the next look may work
                log.exception("image garbage collection failed")

    def status(self) -> dict[str, Any]:
        containers = os.listdir(self.containers_dir) if os.path.isdir(self.containers_dir) \
            else []
        return {"backend": self._backend.name if self._backend else self._backend_name,
                "containers": len(containers), **self.store.status()}
