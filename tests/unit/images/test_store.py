"""The layer store: index, sharing, whiteouts in overlayfs's format, hostile and corrupt layers."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import logging
import os
import stat
import tarfile
import time
from typing import Any

import pytest

from agent_runtime.images.docker_save import SavedLayer, write_docker_save
from agent_runtime.images.errors import BadArchive, DigestMismatch, UnsafeEntry
from agent_runtime.images.image_config import RuntimeConfig
from agent_runtime.images.limits import SizeBudget
from agent_runtime.images.provisioner import ArchivePuller, Provisioner
from agent_runtime.images.pull import PROGRESS_INTERVAL as DEFAULT_INTERVAL
from agent_runtime.images.pull import LayerSource, Manifest, Progress
from agent_runtime.images.reference import Reference
from agent_runtime.images.store import Store
from tests.harness.needs import require
from tests.harness.tars import Item, make_tar, rewrite

from .test_provisioner import mounts_under

CONFIG = RuntimeConfig(cmd=("sh",), env=("PATH=/bin",))


def save(directory: Any, name: str, *layers: bytes) -> str:
    path = os.path.join(directory, f"{name}.tar")
    write_docker_save(path, name, "latest", [SavedLayer(tar, f"layer {i}")
                                             for i, tar in enumerate(layers)], CONFIG, "amd64")
    return path


def store(tmp_path: Any, images: Any) -> Store:
    return Store(str(tmp_path / "store"), ArchivePuller(str(images)))


BOTTOM = make_tar([
    Item("a/", tarfile.DIRTYPE, mode=0o755), Item("a/old", data=b"old"),
    Item("b/", tarfile.DIRTYPE, mode=0o755), Item("b/kept", data=b"kept"),
    Item("gone", data=b"gone"), Item("dir-gone/", tarfile.DIRTYPE, mode=0o755),
    Item("dir-gone/file", data=b"x")])
TOP = make_tar([
    Item("a/", tarfile.DIRTYPE, mode=0o755), Item("a/.wh..wh..opq"), Item("a/new", data=b"new"),
    Item(".wh.gone"), Item(".wh.dir-gone"), Item("b/added", data=b"added")])


@pytest.mark.parametrize("backend", ["overlay", "copy"])
async def test_whiteouts_are_kept_for_overlay_and_applied_by_copy(
        tmp_path: Any, backend: str) -> None:
    require(os.geteuid() == 0, "root (whiteouts are device nodes, mounts)")
    images = tmp_path / "images"
    images.mkdir()
    save(images, "layered", BOTTOM, TOP)
    prov = Provisioner(str(tmp_path / "work"), str(tmp_path / "store"), str(images), backend)
    rootfs = (await prov.provision("c1", "layered")).rootfs
    try:
        assert sorted(os.listdir(rootfs)) == ["a", "b"]
        assert os.listdir(os.path.join(rootfs, "a")) == ["new"]
        assert sorted(os.listdir(os.path.join(rootfs, "b"))) == ["added", "kept"]
        # In the store, the top layer holds the whiteouts the way overlayfs reads them.
        stored = await prov.store.get("layered")
        top = stored.layers[1]
        assert os.getxattr(os.path.join(top, "a"), "trusted.overlay.opaque") == b"y"
        gone = os.lstat(os.path.join(top, "gone"))
        assert stat.S_ISCHR(gone.st_mode) and gone.st_rdev == 0
    finally:
        await prov.destroy("c1")
    assert not mounts_under(str(tmp_path))


async def test_a_tar_entry_escaping_the_layer_is_rejected(tmp_path: Any) -> None:
    images = tmp_path / "images"
    images.mkdir()
    save(images, "evil", make_tar([Item("etc/", tarfile.DIRTYPE), Item("../../escaped",
                                                                       data=b"owned")]))
    layers = store(tmp_path, images)
    with pytest.raises(UnsafeEntry, match="escaped"):
        await layers.get("evil")
    assert not os.path.exists(tmp_path / "escaped")
    assert not list((tmp_path / "store").rglob("escaped"))
    assert os.listdir(tmp_path / "store" / "staging") == []  # the half-made layer is gone
    assert not os.path.exists(tmp_path / "store" / "layers") or \
        os.listdir(tmp_path / "store" / "layers") == []


async def test_a_layer_that_does_not_match_its_diff_id_is_rejected(tmp_path: Any) -> None:
    images = tmp_path / "images"
    images.mkdir()
    good = save(tmp_path, "busybox", make_tar([Item("bin/sh", data=b"sh")]))
    forged = make_tar([Item("bin/sh", data=b"not the shell")])
    with tarfile.open(good) as tar:
        member = next(m.name for m in tar.getmembers() if m.name.endswith("layer.tar"))
        diff_id = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    rewrite(good, str(images / "busybox.tar"), lambda name: True, {member: forged})
    config_name = diff_id[0]["Config"]
    with tarfile.open(good) as tar:
        config = json.loads(tar.extractfile(config_name).read())  # type: ignore[union-attr]
    expected = config["rootfs"]["diff_ids"][0]
    with pytest.raises(DigestMismatch, match=f"'busybox'.*does not match its digest {expected}"):
        await store(tmp_path, images).get("busybox")
    assert os.listdir(tmp_path / "store" / "staging") == []


async def test_gzip_layers_and_the_index(tmp_path: Any) -> None:
    images = tmp_path / "images"
    images.mkdir()
    plain = save(tmp_path, "tool", make_tar([Item("bin/tool", data=b"#!/bin/sh\n", mode=0o755)]))
    with tarfile.open(plain) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("layer.tar"))
        layer = tar.extractfile(member).read()  # type: ignore[union-attr]
    rewrite(plain, str(images / "tool.tar"), lambda name: True,
            {member.name: gzip.compress(layer)})
    layers = store(tmp_path, images)
    image = await layers.get("tool")
    assert image.config == CONFIG
    with open(os.path.join(image.layers[0], "bin", "tool"), "rb") as handle:
        assert handle.read() == b"#!/bin/sh\n"
    with open(tmp_path / "store" / "storedImages") as handle:
        index = json.load(handle)
    layer_id = os.path.basename(os.path.dirname(image.layers[0]))
    assert index == {"version": 1, "images": {"tool:latest": {
        "layers": [layer_id], "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]}}}}
    # A restarted store answers from its index; a layer gone missing is fetched again.
    again = store(tmp_path, images)
    await again.recover()
    assert await again.get("tool") == image and again.layers_extracted == 0
    os.rename(tmp_path / "store" / "layers" / layer_id, tmp_path / "moved")
    assert await again.get("tool") == image and again.layers_extracted == 1


async def test_recover_clears_staging(tmp_path: Any) -> None:
    leftover = tmp_path / "store" / "staging" / "tmp123" / "abc" / "rootfs"
    leftover.mkdir(parents=True)
    layers = store(tmp_path, tmp_path)
    await layers.recover()
    assert not os.path.exists(tmp_path / "store" / "staging")


async def test_images_sharing_a_layer_pulled_at_once_extract_it_once(
        tmp_path: Any, images_dir: str) -> None:
    layers = store(tmp_path, images_dir)
    redis, busybox = await asyncio.gather(layers.get("redis"), layers.get("busybox"))
    assert redis.layers[0] == busybox.layers[0]
    assert layers.layers_extracted == 3
    assert len(os.listdir(tmp_path / "store" / "layers")) == 3


async def test_the_old_layout_names_layers_by_their_v1_ids(tmp_path: Any,
                                                           old_images_dir: str) -> None:
    image = await store(tmp_path, old_images_dir).get("busybox")
    with tarfile.open(os.path.join(old_images_dir, "busybox.tar")) as tar:
        ids = {m.name.split("/")[0] for m in tar.getmembers() if "/" in m.name}
    # Unverified, so in a namespace of their own: never a diff_id's 64 hex digits.
    assert {os.path.basename(os.path.dirname(layer)) for layer in image.layers} == \
        {f"v1-{layer_id}" for layer_id in ids}


def old_layout_archive(path: str, name: str, layer_id: str, layer: bytes) -> None:
    """A one-layer ``docker save`` archive of Docker < 1.10: no diff_id anywhere."""
    members = {"repositories": json.dumps({name: {"latest": layer_id}}).encode(),
               f"{layer_id}/json": json.dumps({"id": layer_id, "config": {"Cmd": ["sh"]}}
                                              ).encode(),
               f"{layer_id}/layer.tar": layer}
    with tarfile.open(path, "w") as tar:
        for member, data in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


GOOD_BASE = make_tar([Item("bin/sh", data=b"the real shell", mode=0o755)])
FORGED_BASE = make_tar([Item("bin/sh", data=b"a backdoor", mode=0o755)])


def diff_id_hex(layer: bytes) -> str:
    return hashlib.sha256(layer).hexdigest()


def read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


async def test_an_old_layout_v1_id_cannot_poison_a_verified_layer(tmp_path: Any) -> None:
    images = tmp_path / "images"
    images.mkdir()
    save(images, "real", GOOD_BASE)
    # The archive names its layer with the diff_id hex of the real image's layer, and gives
    # other contents: nothing can check them, as the old layout records no diff_id.
    old_layout_archive(str(images / "evil.tar"), "evil", diff_id_hex(GOOD_BASE), FORGED_BASE)
    layers = store(tmp_path, images)
    evil = await layers.get("evil")
    assert read(os.path.join(evil.layers[0], "bin/sh")) == b"a backdoor"
    real = await layers.get("real")
    assert real.layers[0] != evil.layers[0]
    assert read(os.path.join(real.layers[0], "bin/sh")) == b"the real shell"
    assert layers.layers_extracted == 2


async def test_a_layer_an_older_store_left_unverified_is_fetched_again(tmp_path: Any) -> None:
    images = tmp_path / "images"
    images.mkdir()
    save(images, "real", GOOD_BASE)
    # What the store wrote before the namespaces were kept apart: a v1 layer under a hex id.
    poisoned = tmp_path / "store" / "layers" / diff_id_hex(GOOD_BASE)
    (poisoned / "rootfs" / "bin").mkdir(parents=True)
    (poisoned / "rootfs" / "bin" / "sh").write_bytes(b"a backdoor")
    (poisoned / "json").write_text(json.dumps({"id": poisoned.name, "diff_id": None}))
    layers = store(tmp_path, images)
    real = await layers.get("real")
    assert read(os.path.join(real.layers[0], "bin/sh")) == b"the real shell"
    assert layers.layers_extracted == 1
    assert os.listdir(tmp_path / "store" / "staging") == []


class _FixedPuller:
    def __init__(self, *layers: LayerSource) -> None:
        self.layers = layers

    def resolve(self, reference: Reference, given: str) -> Manifest:
        return Manifest(reference=given, origin="fixed", layers=self.layers, config=CONFIG)

    def fetch(self, manifest: Manifest, layer: LayerSource, rootfs: str, scratch: str,
              progress: Progress, budget: SizeBudget) -> None:
        raise AssertionError("nothing may be fetched")


HEX = "ab" * 32


@pytest.mark.parametrize(("layer", "error"), [
    (LayerSource(id=HEX, locator="x", diff_id=None), "has no diff_id, so its id must start"),
    (LayerSource(id=HEX.upper(), locator="x", diff_id=f"sha256:{HEX.upper()}"), "bad diff_id"),
    (LayerSource(id="v1-x", locator="x", diff_id="sha256:v1-x"), "bad diff_id"),
    (LayerSource(id=HEX, locator="x", diff_id=f"sha256:{'cd' * 32}"), "is not the hex of"),
    (LayerSource(id="../up", locator="x", diff_id=None), "bad layer id"),
])
async def test_layer_ids_keep_verified_and_unverified_apart(tmp_path: Any, layer: LayerSource,
                                                            error: str) -> None:
    layers = Store(str(tmp_path / "store"), _FixedPuller(layer))
    with pytest.raises(BadArchive, match=f"image 'img': .*{error}"):
        await layers.get("img")


@pytest.mark.parametrize(("config", "field"), [
    ({"rootfs": ["sha256:" + HEX]}, "field rootfs must be an object"),
    ({"rootfs": {"diff_ids": "sha256:" + HEX}}, "field rootfs.diff_ids must be a list"),
    ({"rootfs": {"diff_ids": [7]}}, "field rootfs.diff_ids must be a list"),
])
async def test_a_malformed_archive_config_is_a_bad_archive(tmp_path: Any, config: Any,
                                                           field: str) -> None:
    images = tmp_path / "images"
    images.mkdir()
    good = save(tmp_path, "img", GOOD_BASE)
    with tarfile.open(good) as tar:
        config_name = json.loads(tar.extractfile("manifest.json").read())[0]["Config"]  # type: ignore[union-attr]
    rewrite(good, str(images / "img.tar"), lambda name: True,
            {config_name: json.dumps(config).encode()})
    with pytest.raises(BadArchive, match=f"image 'img': .*{field}"):
        await store(tmp_path, images).get("img")


def test_progress_lines_come_at_most_once_an_interval(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    assert DEFAULT_INTERVAL == 1.0
    monkeypatch.setattr("agent_runtime.images.pull.PROGRESS_INTERVAL", 0.05)
    manifest = Manifest(reference="redis", origin="/images/redis.tar", layers=(), config=CONFIG)
    progress = Progress(manifest, layers=2)
    caplog.set_level(logging.INFO, logger="agent_runtime.images.pull")
    started = time.monotonic()
    while time.monotonic() - started < 0.3:
        progress.add(1000)
        time.sleep(0.001)
    progress.layer_done()
    progress.finish()
    lines = [record.getMessage() for record in caplog.records]
    assert 2 <= len(lines) <= 0.3 / 0.05 + 2
    assert lines[-1].startswith("pulling redis from /images/redis.tar: ")
    assert "1/2 layers" in lines[-1] and " MB" in lines[-1]
