"""Size caps: bytes are counted as they are written, so a gzip bomb stops at the cap, and the
partial layer never reaches the store."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
import threading
from typing import Any

import pytest

from agent_runtime.images.docker_save import SavedLayer, write_docker_save
from agent_runtime.images.errors import ImageTooLarge
from agent_runtime.images.image_config import RuntimeConfig
from agent_runtime.images.limits import SizeBudget, SizeLimits
from agent_runtime.images.provisioner import ArchivePuller
from agent_runtime.images.store import Store
from agent_runtime.images.unpack import unpack_layer
from tests.harness.tars import Item, make_tar, rewrite

MB = 1 << 20
CONFIG = RuntimeConfig(cmd=("sh",))
BOMB_SIZE = 64 * MB  # of zeros: gzip makes that about 64 KB


def bomb_tar() -> bytes:
    return make_tar([Item("etc", tarfile.DIRTYPE, mode=0o755), Item("etc/ok", data=b"fine"),
                     Item("zeros", data=bytes(BOMB_SIZE))])


def save(images: Any, name: str, *layers: bytes, gzipped: bool = False) -> None:
    """``<images>/<name>.tar``, its layers gzip-compressed inside when ``gzipped``."""
    plain = os.path.join(images, f"{name}.plain")
    write_docker_save(plain, name, "latest",
                      [SavedLayer(tar, f"layer {i}") for i, tar in enumerate(layers)],
                      CONFIG, "amd64")
    with tarfile.open(plain) as tar:
        members = {m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
                   for m in tar.getmembers() if m.name.endswith("layer.tar")}
    replace = {n: gzip.compress(data, 1) for n, data in members.items()} if gzipped else {}
    rewrite(plain, os.path.join(images, f"{name}.tar"), lambda name: True, replace)
    os.unlink(plain)


def store(tmp_path: Any, max_layer: int, max_image: int) -> Store:
    return Store(str(tmp_path / "store"), ArchivePuller(str(tmp_path / "images")),
                 SizeLimits(max_layer=max_layer, max_image=max_image))


def store_layers(tmp_path: Any) -> list[str]:
    layers = tmp_path / "store" / "layers"
    return sorted(os.listdir(layers)) if os.path.isdir(layers) else []


@pytest.fixture
def images(tmp_path: Any) -> Any:
    (tmp_path / "images").mkdir()
    return tmp_path / "images"


def test_a_gzip_bomb_is_stopped_one_chunk_past_the_cap(tmp_path: Any) -> None:
    compressed = gzip.compress(bomb_tar(), 1)
    assert len(compressed) < BOMB_SIZE // 100
    read: list[int] = []
    budget = SizeBudget(MB, "image 'bomb': layer L", "--image_max_layer_size")
    with pytest.raises(ImageTooLarge, match=r"layer L unpacks to more than 1MB "
                                            r"\(--image_max_layer_size\)"):
        unpack_layer(io.BytesIO(compressed), str(tmp_path / "rootfs"), None, "bomb",
                     read.append, budget.charge)
    # Decompressed as far as the cap and a little more, not the 64 MiB the headers promise.
    assert sum(read) < 4 * MB
    assert os.path.getsize(tmp_path / "rootfs" / "zeros") <= MB


async def test_a_gzip_bomb_layer_fails_the_pull_naming_it_and_leaves_nothing(
        tmp_path: Any, images: Any) -> None:
    save(images, "bomb", bomb_tar(), gzipped=True)
    layers = store(tmp_path, max_layer=MB, max_image=1024 * MB)
    with pytest.raises(ImageTooLarge) as caught:
        await layers.get("bomb")
    message = str(caught.value)
    assert message.startswith("image 'bomb': layer ") and "layer.tar" in message
    assert message.endswith("unpacks to more than 1MB (--image_max_layer_size)")
    assert store_layers(tmp_path) == []  # the partial layer is gone ...
    assert os.listdir(tmp_path / "store" / "staging") == []  # ... with its staging directory
    assert layers.status()["images"] == []


async def test_an_image_over_its_cap_fails_even_when_each_layer_fits(tmp_path: Any,
                                                                     images: Any) -> None:
    half = make_tar([Item("a", data=bytes(600 * 1024))])
    other = make_tar([Item("b", data=bytes(600 * 1024))])
    save(images, "big", half, other)
    with pytest.raises(ImageTooLarge, match=r"^image 'big' unpacks to more than 1MB "
                                            r"\(--image_max_size\)"):
        await store(tmp_path, max_layer=MB, max_image=MB).get("big")
    # A layer already in the store counts too: the second image finds "half" there.
    save(images, "small", half)
    save(images, "grown", half, other)
    layers = store(tmp_path, max_layer=MB, max_image=MB)
    await layers.get("small")
    with pytest.raises(ImageTooLarge, match=r"^image 'grown' unpacks to"):
        await layers.get("grown")
    # A larger cap takes both, and each layer's json records what it unpacked to.
    both = await store(tmp_path, max_layer=MB, max_image=2 * MB).get("grown")
    for path in both.layers:
        with open(os.path.join(os.path.dirname(path), "json")) as handle:
            # The file, and a tar block for its header.
            assert 600 * 1024 < json.load(handle)["size"] < 600 * 1024 + 2048


async def test_an_empty_file_flood_is_capped_by_its_headers(tmp_path: Any, images: Any) -> None:
    save(images, "flood", make_tar([Item(f"f{i}") for i in range(3000)]))
    with pytest.raises(ImageTooLarge, match="more than 1MB"):
        await store(tmp_path, max_layer=MB, max_image=MB).get("flood")
    assert store_layers(tmp_path) == []


def test_a_shared_image_budget_holds_across_threads() -> None:
    image = SizeBudget(1000, "image 'x'", "--image_max_size")
    layers = [image.child(10**6, f"layer {i}", "--image_max_layer_size") for i in range(4)]
    errors: list[str] = []

    def spend(budget: SizeBudget) -> None:
        try:
            for _ in range(100):
                budget.charge(5)
        except ImageTooLarge as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=spend, args=(layer,)) for layer in layers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert image.used > 1000 and errors
    assert all(e.startswith("image 'x' unpacks to more than 1000B (--image_max_size) "
                            "(stopped in layer ") for e in errors)
