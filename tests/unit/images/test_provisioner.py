"""The provisioner on real archives, real mounts and real directories (we run as root).

Each backend is forced in turn; after every test no mount may be left under the test's
directory, as read from /proc/self/mountinfo here rather than through the code under test.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from agent_runtime.images.backend import overlay_works
from agent_runtime.images.errors import ImageError, ImageNotFound, ProvisionError, RegistryError
from agent_runtime.images.provisioner import ArchivePuller, Provisioned, Provisioner
from agent_runtime.images.pull import Manifest
from agent_runtime.images.reference import Reference
from tests.harness.needs import require

BACKENDS = ("overlay", "copy")


def mounts_under(directory: str) -> list[str]:
    root = os.path.realpath(directory)
    with open("/proc/self/mountinfo") as mountinfo:
        points = [line.split()[4] for line in mountinfo]
    return [point for point in points if point == root or point.startswith(root + "/")]


@pytest.fixture(autouse=True)
def no_mount_left(tmp_path: Any) -> Iterator[None]:
    require(os.geteuid() == 0, "root (the provisioner mounts)")
    yield
    left = mounts_under(str(tmp_path))
    for point in reversed(left):  # do not leak them into the next tests, then fail this one
        subprocess.run(["umount", "-l", point], check=False)
    assert not left, f"mounts left behind: {left}"


def provisioner(tmp_path: Any, registry: str, backend: str | None) -> Provisioner:
    if backend == "overlay":
        require(overlay_works(str(tmp_path / "probe"), str(tmp_path / "probe")),
                "overlay mounts")
    return Provisioner(work_dir=str(tmp_path / "work"), store_dir=str(tmp_path / "store"),
                       registry=registry, backend=backend)


def os_release(provisioned: Provisioned) -> str:
    # etc/os-release is a relative link to ../usr/lib/os-release, so it resolves in the rootfs.
    with open(os.path.join(provisioned.rootfs, "etc", "os-release")) as handle:
        return handle.read()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layout", ["manifest", "repositories"])
async def test_provision_from_a_directory_of_archives(
        tmp_path: Any, images_dir: str, old_images_dir: str, backend: str, layout: str) -> None:
    directory = images_dir if layout == "manifest" else old_images_dir
    prov = provisioner(tmp_path, directory, backend)
    redis = await prov.provision("c1", "redis")
    assert 'ID=debian' in os_release(redis)
    assert os.access(os.path.join(redis.rootfs, "usr/bin/redis-server"), os.X_OK)
    assert redis.config.cmd == ("redis-server", "/etc/redis/redis.conf")
    assert redis.config.working_dir == "/data"
    assert redis.rootfs.startswith(
        str(tmp_path / "work" / "provisioner" / "containers" / "c1" / "backends" / backend /
            "rootfses"))
    assert os.path.ismount(redis.rootfs) == (backend == "overlay")
    busybox = await prov.provision("c2", "busybox:latest")
    assert os.path.islink(os.path.join(busybox.rootfs, "usr/bin/sh"))
    assert not os.path.exists(os.path.join(busybox.rootfs, "usr/bin/redis-server"))
    # The container's writes stay in its own rootfs.
    with open(os.path.join(busybox.rootfs, "etc", "hostname"), "w") as handle:
        handle.write("c2\n")
    assert not os.path.exists(os.path.join(redis.rootfs, "etc", "hostname"))
    for container in ("c1", "c2"):
        await prov.destroy(container)


@pytest.mark.parametrize("image", ["redis", "library/redis", "redis:latest",
                                   "docker.io/library/redis:latest"])
def test_archive_names_follow_mesos_then_fall_back(tmp_path: Any, images_dir: str,
                                                   image: str) -> None:
    from agent_runtime.images.reference import parse_reference

    puller = ArchivePuller(images_dir)
    manifest = puller.resolve(parse_reference(image), image)
    assert os.path.basename(manifest.origin) == "redis.tar"
    first = os.path.relpath(puller.candidates(parse_reference(image), image)[0], images_dir)
    assert first == f"{image}.tar"  # Mesos's own naming is tried first


@pytest.mark.parametrize("backend", BACKENDS)
async def test_layers_are_shared_between_images_and_containers(
        tmp_path: Any, images_dir: str, backend: str) -> None:
    prov = provisioner(tmp_path, images_dir, backend)
    await prov.provision("c1", "redis")
    layers = tmp_path / "store" / "layers"
    base = {name: os.stat(layers / name).st_ino for name in os.listdir(layers)}
    assert len(base) == 2 and prov.store.layers_extracted == 2
    await prov.provision("c2", "busybox")  # shares its base-files layer with redis
    await prov.provision("c3", "redis")
    assert prov.store.layers_extracted == 3
    assert len(os.listdir(layers)) == 3
    assert all(os.stat(layers / name).st_ino == inode for name, inode in base.items())
    assert sorted(prov.status()["images"]) == ["busybox:latest", "redis:latest"]
    for container in ("c1", "c2", "c3"):
        await prov.destroy(container)


class CountingPuller(ArchivePuller):
    def __init__(self, directory: str) -> None:
        super().__init__(directory)
        self.resolved = 0

    def resolve(self, reference: Reference, given: str) -> Manifest:
        self.resolved += 1
        return super().resolve(reference, given)


async def test_concurrent_provisions_of_one_image_pull_it_once(
        tmp_path: Any, images_dir: str) -> None:
    prov = provisioner(tmp_path, images_dir, "copy")
    puller = CountingPuller(images_dir)
    prov.store.puller = puller
    results = await asyncio.gather(*(prov.provision(f"c{i}", image) for i, image in
                                     enumerate(["redis", "library/redis", "redis:latest",
                                                "redis", "busybox"])))
    assert puller.resolved == 2  # redis (under three spellings) once, busybox once
    assert prov.store.layers_extracted == 3  # base-files once for both images
    assert len({result.rootfs for result in results}) == 5
    for i in range(5):
        await prov.destroy(f"c{i}")


@pytest.mark.parametrize("backend", BACKENDS)
async def test_destroy_leaves_no_mount_and_no_directory(
        tmp_path: Any, images_dir: str, backend: str) -> None:
    prov = provisioner(tmp_path, images_dir, backend)
    first = await prov.provision("c1", "busybox")
    second = await prov.provision("c1", "busybox")  # a container may have several rootfses
    container = tmp_path / "work" / "provisioner" / "containers" / "c1"
    assert len(mounts_under(str(container))) == (2 if backend == "overlay" else 0)
    await prov.destroy("c1")
    assert not mounts_under(str(container)) and not os.path.lexists(container)
    assert not os.path.exists(first.rootfs) and not os.path.exists(second.rootfs)
    await prov.destroy("c1")  # idempotent
    await prov.destroy("never-provisioned")
    # The layers stay in the store for the next container.
    assert len(os.listdir(tmp_path / "store" / "layers")) == 2


@pytest.mark.parametrize("backend", BACKENDS)
async def test_recover_destroys_unknown_containers_only(
        tmp_path: Any, images_dir: str, backend: str) -> None:
    before = provisioner(tmp_path, images_dir, backend)
    kept = await before.provision("kept", "busybox")
    gone = await before.provision("gone", "redis")
    # A restarted agent: a new provisioner over the same directories.
    after = provisioner(tmp_path, images_dir, backend)
    await after.recover(known={"kept"})
    assert not os.path.exists(gone.rootfs)
    assert not mounts_under(str(tmp_path / "work" / "provisioner" / "containers" / "gone"))
    assert os.path.isfile(os.path.join(kept.rootfs, "usr/bin/busybox"))
    again = await after.provision("new", "redis")  # from the store's index: nothing extracted
    assert after.store.layers_extracted == 0 and "ID=debian" in os_release(again)
    await after.recover(known=())
    assert os.listdir(tmp_path / "work" / "provisioner" / "containers") == []


async def test_an_unknown_image_is_an_error_naming_it(tmp_path: Any, images_dir: str) -> None:
    prov = provisioner(tmp_path, images_dir, "copy")
    with pytest.raises(ImageNotFound, match=r"image 'nginx:1\.25' not found: no "
                                            r"nginx:1\.25\.tar.*nginx\.tar") as raised:
        await prov.provision("c1", "nginx:1.25")
    assert images_dir in str(raised.value)
    with pytest.raises(ImageError, match="bad repository name"):
        await prov.provision("c1", "UPPER/case")
    with pytest.raises(ImageError, match=r"'redis:6'.*it holds: redis:latest"):
        await prov.provision("c1", "redis:6")  # redis.tar is there, but not that tag
    assert not os.path.exists(tmp_path / "work" / "provisioner" / "containers" / "c1")


async def test_an_unreachable_registry_is_an_image_error(tmp_path: Any) -> None:
    from tests.harness.cluster import free_port

    prov = provisioner(tmp_path, f"http://127.0.0.1:{free_port()}", "copy")
    with pytest.raises(RegistryError, match=r"image 'busybox': cannot reach the registry"):
        await prov.provision("c1", "busybox")


def test_bad_backends_and_container_ids_are_refused(tmp_path: Any) -> None:
    with pytest.raises(ProvisionError, match="unknown provisioner backend 'aufs'"):
        provisioner(tmp_path, "/images", "aufs")
    with pytest.raises(ProvisionError, match="hdfs"):
        provisioner(tmp_path, "hdfs://namenode/images", None)
    prov = provisioner(tmp_path, "/images", None)
    for bad in ("", "..", "a/b"):
        with pytest.raises(ProvisionError, match="cannot name a directory"):
            prov.container_dir(bad)


async def test_the_backend_is_chosen_once_overlay_when_it_works(tmp_path: Any,
                                                                 images_dir: str) -> None:
    prov = provisioner(tmp_path, images_dir, None)
    works = overlay_works(str(tmp_path / "probe"), str(tmp_path / "probe"))
    backend = await prov.backend()
    assert backend.name == ("overlay" if works else "copy")
    assert await prov.backend() is backend
    assert not [name for name in os.listdir(tmp_path / "work" / "provisioner")
                if name.startswith(".overlay-probe")]


async def test_an_unexpected_error_from_a_pull_is_a_provision_error_naming_the_image(
        tmp_path: Any, images_dir: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    def broken(self: ArchivePuller, reference: Reference, given: str) -> Manifest:
        raise KeyError("surprise")

    monkeypatch.setattr(ArchivePuller, "resolve", broken)
    prov = provisioner(tmp_path, images_dir, "copy")
    with pytest.raises(ProvisionError, match=r"image 'redis': cannot pull it: unexpected "
                                             r"KeyError: 'surprise'") as raised:
        await prov.provision("c1", "redis")
    assert isinstance(raised.value.__cause__, KeyError)
    assert "Traceback" in caplog.text and "unexpected error pulling image 'redis'" in caplog.text
    assert not os.path.exists(tmp_path / "work" / "provisioner" / "containers" / "c1")
