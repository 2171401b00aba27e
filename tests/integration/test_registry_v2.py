"""Integration: provisioning from a real Docker Registry v2 (Debian's ``docker-registry``) on
loopback, into which the offline busybox and redis images are pushed with plain v2 calls."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import pytest

from agent_runtime.images.errors import DigestMismatch, ImageNotFound
from agent_runtime.images.provisioner import Provisioner
from tests.harness.needs import require
from tests.harness.registry import Registry, push_archive, registry_server

pytestmark = pytest.mark.registry


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory, offline_images_dir: str
           ) -> Iterator[tuple[Registry, dict[str, Any]]]:
    images = offline_images_dir
    with registry_server(str(tmp_path_factory.mktemp("registry"))) as registry:
        manifests = {name: push_archive(registry, os.path.join(images, f"{name}.tar"), name)
                     for name in ("busybox", "redis")}
        # Blobs of its own, so that tampering with them leaves busybox's intact.
        manifests["tampered"] = push_archive(registry, os.path.join(images, "busybox.tar"),
                                             "tampered", mtime=1)
        yield registry, manifests


def provisioner(tmp_path: Any, registry: Registry, backend: str) -> Provisioner:
    return Provisioner(str(tmp_path / "work"), str(tmp_path / "store"), registry.url, backend)


@pytest.mark.parametrize("backend", ["overlay", "copy"])
async def test_provision_from_the_registry(tmp_path: Any, pushed: tuple[Registry, Any],
                                           backend: str) -> None:
    require(os.geteuid() == 0, "root (the provisioner mounts)")
    registry, _ = pushed
    prov = provisioner(tmp_path, registry, backend)
    try:
        redis, busybox, again = await asyncio.gather(
            prov.provision("c1", "redis"), prov.provision("c2", "busybox:latest"),
            prov.provision("c3", "redis"))
        with open(os.path.join(redis.rootfs, "etc", "os-release")) as handle:
            assert "ID=debian" in handle.read()
        assert os.access(os.path.join(redis.rootfs, "usr/bin/redis-server"), os.X_OK)
        assert os.path.isfile(os.path.join(busybox.rootfs, "usr/bin/busybox"))
        assert redis.config.cmd == ("redis-server", "/etc/redis/redis.conf")
        assert again.config == redis.config and again.rootfs != redis.rootfs
        # redis and busybox share their base layer: three layers in all, each fetched once.
        assert prov.store.layers_extracted == 3
        # The registry named in the reference is the one configured: same store entry.
        host = registry.url.removeprefix("http://")
        named = await prov.provision("c4", f"{host}/busybox")
        assert named.config == busybox.config and prov.store.layers_extracted == 3
    finally:
        for container in ("c1", "c2", "c3", "c4"):
            await prov.destroy(container)


async def test_a_missing_repository_or_tag_is_not_found(tmp_path: Any,
                                                        pushed: tuple[Registry, Any]) -> None:
    registry, _ = pushed
    prov = provisioner(tmp_path, registry, "copy")
    with pytest.raises(ImageNotFound, match=r"image 'nginx': manifest not found at http://"):
        await prov.provision("c1", "nginx")
    with pytest.raises(ImageNotFound, match=r"image 'redis:6'"):
        await prov.provision("c1", "redis:6")


async def test_a_corrupted_blob_is_rejected_naming_its_digest(
        tmp_path: Any, pushed: tuple[Registry, dict[str, Any]]) -> None:
    registry, manifests = pushed
    digest = manifests["tampered"]["layers"][-1]["digest"]
    assert digest not in {layer["digest"] for layer in manifests["busybox"]["layers"]}
    path = registry.blob_path(digest)
    with open(path, "r+b") as blob:  # same size, other bytes: only the digest can tell
        blob.seek(os.path.getsize(path) // 2)
        byte = blob.read(1)
        blob.seek(-1, os.SEEK_CUR)
        blob.write(bytes([byte[0] ^ 0xFF]))
    prov = provisioner(tmp_path, registry, "copy")
    with pytest.raises(DigestMismatch, match=f"image 'tampered': layer blob {digest} .* "
                                             "does not match its digest"):
        await prov.provision("c1", "tampered")
    assert not os.listdir(tmp_path / "store" / "staging")
    assert not os.path.exists(tmp_path / "work" / "provisioner" / "containers" / "c1")
