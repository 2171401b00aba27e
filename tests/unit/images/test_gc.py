"""Image garbage collection: unused images and layers go, a live container's never do.

Real archives, real layers and, with the overlay backend, real mounts: a layer a mounted rootfs
stacks must survive every prune, whenever the prune comes.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from typing import Any

import pytest

from agent_runtime.images.gc import ImageGcConfig
from agent_runtime.images.limits import SizeBudget
from agent_runtime.images.provisioner import ArchivePuller, Provisioner
from agent_runtime.images.pull import LayerSource, Manifest, Progress

from .test_provisioner import BACKENDS, no_mount_left, os_release, provisioner  # noqa: F401


def layer_ids(tmp_path: Any) -> set[str]:
    layers = tmp_path / "store" / "layers"
    return set(os.listdir(layers)) if os.path.isdir(layers) else set()


def index(tmp_path: Any) -> list[str]:
    with open(tmp_path / "store" / "storedImages") as handle:
        return sorted(json.load(handle)["images"])


@pytest.mark.parametrize("backend", BACKENDS)
async def test_prune_removes_an_unused_image_and_keeps_the_one_in_use(
        tmp_path: Any, images_dir: str, backend: str) -> None:
    prov = provisioner(tmp_path, images_dir, backend)
    busybox = await prov.provision("c1", "busybox")
    await prov.provision("c2", "redis")
    all_layers = layer_ids(tmp_path)
    await prov.destroy("c2")  # redis is now unused; busybox shares its base layer with it
    pruned = await prov.prune_images()
    assert pruned.images == ("redis:latest",) and len(pruned.layers) == 1 and pruned.size > 0
    assert index(tmp_path) == ["busybox:latest"]
    assert layer_ids(tmp_path) == all_layers - set(pruned.layers)
    assert "ID=debian" in os_release(busybox)  # the live rootfs still reads its layers
    assert os.listdir(tmp_path / "store" / "staging") == []
    # An excluded image stays though nothing uses it; then without the exclusion it goes.
    await prov.destroy("c1")
    assert (await prov.prune_images(["busybox"])).layers == ()
    pruned = await prov.prune_images()
    assert pruned.images == ("busybox:latest",) and layer_ids(tmp_path) == set()
    # A pruned image is simply pulled again.
    again = await prov.provision("c3", "busybox")
    assert "ID=debian" in os_release(again)
    await prov.destroy("c3")


async def test_the_gc_config_exclusions_apply_to_every_prune(tmp_path: Any,
                                                           images_dir: str) -> None:
    prov = Provisioner(work_dir=str(tmp_path / "work"), store_dir=str(tmp_path / "store"),
                       registry=images_dir, backend="copy",
                       gc=ImageGcConfig(excluded_images=("library/redis:latest",)))
    for container, image in (("c1", "redis"), ("c2", "busybox")):
        await prov.provision(container, image)
        await prov.destroy(container)
    assert (await prov.prune_images()).images == ("busybox:latest",)
    assert index(tmp_path) == ["redis:latest"]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_restarted_agent_keeps_the_layers_of_the_containers_it_recovers(
        tmp_path: Any, images_dir: str, backend: str) -> None:
    before = provisioner(tmp_path, images_dir, backend)
    kept = await before.provision("kept", "redis")
    layers = layer_ids(tmp_path)
    after = provisioner(tmp_path, images_dir, backend)
    await after.recover(known={"kept"})
    assert (await after.prune_images()).layers == ()
    assert layer_ids(tmp_path) == layers and "ID=debian" in os_release(kept)
    # A container provisioned before its layers were recorded: nothing is pruned while it runs.
    os.unlink(tmp_path / "work" / "provisioner" / "containers" / "kept" / "images")
    older = provisioner(tmp_path, images_dir, backend)
    await older.recover(known={"kept"})
    await older.provision("other", "busybox")
    await older.destroy("other")
    layers = layer_ids(tmp_path)  # busybox's own layer too, now unused
    assert (await older.prune_images()).layers == () and layer_ids(tmp_path) == layers
    await older.destroy("kept")
    assert layer_ids(tmp_path) and (await older.prune_images()).layers
    assert layer_ids(tmp_path) == set()


class GatedPuller(ArchivePuller):
    """Holds the fetch of an image's top layer until ``release`` is set: a pull caught half
    way, its lower layers already in ``layers/`` but in no index entry yet."""

    def __init__(self, directory: str) -> None:
        super().__init__(directory)
        self.fetching = threading.Event()
        self.release = threading.Event()

    def fetch(self, manifest: Manifest, layer: LayerSource, rootfs: str, scratch: str,
              progress: Progress, budget: SizeBudget) -> None:
        super().fetch(manifest, layer, rootfs, scratch, progress, budget)
        if layer == manifest.layers[-1]:
            self.fetching.set()
            assert self.release.wait(30)


async def test_a_prune_during_a_pull_leaves_the_layers_it_pulled(tmp_path: Any,
                                                                images_dir: str) -> None:
    prov = provisioner(tmp_path, images_dir, "copy")
    await prov.provision("old", "redis")
    await prov.destroy("old")
    base = layer_ids(tmp_path)
    for layer in base:  # busybox must fetch every layer, the shared base one first
        os.rename(tmp_path / "store" / "layers" / layer, tmp_path / f"moved-{layer}")
    puller = GatedPuller(images_dir)
    prov.store.puller = puller
    starting = asyncio.create_task(prov.provision("new", "busybox"))
    assert await asyncio.to_thread(puller.fetching.wait, 30)
    for _ in range(500):  # the base layer lands in layers/ while the top one is held
        if layer_ids(tmp_path):
            break
        await asyncio.sleep(0.01)
    in_flight = layer_ids(tmp_path)
    assert len(in_flight) == 1
    # Redis is unused, and its index entry was the only one naming the base layer.
    pruned = await prov.prune_images()
    assert pruned.images == ("redis:latest",) and pruned.layers == ()
    assert layer_ids(tmp_path) == in_flight
    puller.release.set()
    busybox = await starting
    assert "ID=debian" in os_release(busybox)
    assert len(layer_ids(tmp_path)) == 2
    await prov.destroy("new")


async def test_the_disk_watch_prunes_below_the_headroom_only(tmp_path: Any,
                                                            images_dir: str) -> None:
    quiet = Provisioner(work_dir=str(tmp_path / "work"), store_dir=str(tmp_path / "store"),
                        registry=images_dir, backend="copy",
                        gc=ImageGcConfig(headroom=0.0, interval=0.02))
    await quiet.recover(known=())
    await quiet.provision("c1", "busybox")
    await quiet.destroy("c1")
    await asyncio.sleep(0.2)  # no disk is less than 0% free: nothing goes
    assert index(tmp_path) == ["busybox:latest"]
    await quiet.close()
    # Every disk is less than 100% free: the next look prunes.
    eager = Provisioner(work_dir=str(tmp_path / "work"), store_dir=str(tmp_path / "store"),
                        registry=images_dir, backend="copy",
                        gc=ImageGcConfig(headroom=1.0, interval=0.02))
    await eager.recover(known=())
    try:
        for _ in range(250):
            if not layer_ids(tmp_path):
                break
            await asyncio.sleep(0.02)
        assert layer_ids(tmp_path) == set() and index(tmp_path) == []
    finally:
        await eager.close()
