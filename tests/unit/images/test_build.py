"""The image builder over a fake apt: layering, merged /usr, trimming, caching, determinism.

The packages are made up (a fake ``app`` and its libraries) so this runs anywhere; the
integration test builds the real busybox and redis from Debian.
"""

from __future__ import annotations

import dataclasses
import os
import tarfile
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from agent_runtime.images.apt import Apt, Package
from agent_runtime.images.archive import DockerArchive
from agent_runtime.images.build import ImageBuilder, merged_usr
from agent_runtime.images.errors import ImageError
from agent_runtime.images.image_config import RuntimeConfig
from agent_runtime.images.recipes import BASE_LAYER, FileSpec, ImageRecipe, LayerRecipe
from tests.harness.tars import Item, make_elf, make_tar, open_tar

LOADER = "/lib64/ld-linux-x86-64.so.2"
D = tarfile.DIRTYPE
FAKE_BUSYBOX = b"#!/bin/sh\necho bin/sh; echo sbin/ifconfig; echo usr/bin/awk\n"

CONTENT = {
    "base-files": [Item("./", kind=D), Item("./bin/", kind=D), Item("./etc/", kind=D),
                   Item("./usr/lib/os-release", data=b"ID=debian\n"),
                   Item("./etc/os-release", kind=tarfile.SYMTYPE,
                        linkname="../usr/lib/os-release")],
    "app": [Item("./usr/bin/app", data=make_elf(LOADER, ["libfoo.so.1", "libc.so.6"]),
                 mode=0o755),
            Item("./usr/share/doc/app/changelog.gz", data=b"x"),
            Item("./usr/share/doc/app/copyright", data=b"MIT"),
            Item("./usr/share/man/man1/app.1.gz", data=b"x")],
    "libfoo1": [Item("./lib/x86_64-linux-gnu/libfoo.so.1", data=make_elf("", ["libc.so.6"]))],
    "libc6": [Item("./lib/x86_64-linux-gnu/libc.so.6", data=make_elf(LOADER, [])),
              Item("./lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", data=make_elf()),
              Item("./lib64/ld-linux-x86-64.so.2", kind=tarfile.SYMTYPE,
                   linkname="/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")],
    "busybox-static": [Item("./bin/busybox", data=FAKE_BUSYBOX, mode=0o755)],
}
GRAPH = {"app": ["adduser", "libfoo1", "libc6"], "libfoo1": ["libc6"], "libc6": [],
         "adduser": ["passwd"]}


class FakeApt(Apt):
    def __init__(self, graph: dict[str, list[str]]) -> None:
        super().__init__("/nonexistent", update="never")
        self.graph = graph
        self.fetched: list[str] = []

    def architecture(self) -> str:
        return "amd64"

    def dependency_graph(self, roots: Sequence[str]) -> dict[str, list[str]]:
        return self.graph

    def locate(self, names: Sequence[str]) -> list[Package]:
        return [Package(n, "1.0", "amd64", f"{n}_1.0_amd64.deb", 1, "sha256", "0" * 64)
                for n in names]

    def fetch(self, packages: Sequence[Package]) -> dict[str, str]:
        self.fetched += [p.name for p in packages]
        return {p.name: p.name for p in packages}

    def read_deb(self, path: str) -> Iterator[tuple[tarfile.TarInfo, bytes]]:
        with open_tar(make_tar(CONTENT[path])) as tar:
            for member in tar:
                source = tar.extractfile(member) if member.isreg() else None
                yield member, source.read() if source else b""


APP = ImageRecipe(
    name="app", description="test", config=RuntimeConfig(cmd=("app",)),
    layers=(BASE_LAYER, LayerRecipe(packages=("app",), with_libraries=True,
                                    files=(FileSpec("etc/app.conf", b"x=1\n"),))))


def build(tmp_path: Any, recipe: ImageRecipe = APP, graph: dict[str, list[str]] = GRAPH,
          rebuild: bool = False) -> tuple[Any, FakeApt]:
    apt = FakeApt(graph)
    builder = ImageBuilder(apt, os.path.join(tmp_path, "cache"), rebuild=rebuild)
    plan = builder.plan([recipe])[recipe.name]
    return builder.build(recipe, plan, os.path.join(tmp_path, "out")), apt


def layer_names(path: str) -> list[list[str]]:
    with DockerArchive(path) as archive:
        image = archive.image()
        names = []
        for layer in image.layers:
            with archive.open_layer(layer) as tar:
                names.append([m.name.rstrip("/") for m in tar])
    return names


def test_plan_puts_libraries_in_the_layer_that_needs_them(tmp_path: Any) -> None:
    result, _ = build(tmp_path)
    assert [p.name for p in result.packages] == ["base-files", "app", "libc6", "libfoo1"]


def test_layers_hold_merged_usr_and_no_docs(tmp_path: Any) -> None:
    result, _ = build(tmp_path)
    base, top = layer_names(result.path)
    assert {"bin", "lib", "lib64", "sbin", "etc/passwd", "etc/group", "tmp"} <= set(base)
    assert "usr/bin" in base and not any(n.startswith("bin/") for n in base)
    assert "usr/lib/x86_64-linux-gnu/libc.so.6" in top
    assert "usr/lib64/ld-linux-x86-64.so.2" in top
    assert not [n for n in top if n.startswith(("lib/", "lib64/"))]
    assert "usr/share/doc/app/copyright" in top and "etc/app.conf" in top
    assert not [n for n in top if n.endswith(("changelog.gz", ".1.gz"))]


def test_output_is_linked_for_library_references(tmp_path: Any) -> None:
    result, _ = build(tmp_path)
    alias = os.path.join(tmp_path, "out", "library", "app.tar")
    assert result.path == os.path.join(tmp_path, "out", "app.tar")
    assert os.readlink(alias) == "../app.tar"
    with DockerArchive(alias) as archive:
        assert archive.image("library/app").config.cmd == ("app",)


def test_second_build_comes_from_cache_and_a_rebuild_is_identical(tmp_path: Any) -> None:
    first, _ = build(tmp_path)
    with open(first.path, "rb") as archive:
        before = archive.read()
    second, apt = build(tmp_path)
    assert second.cached and not first.cached and apt.fetched == []
    third, apt = build(tmp_path, rebuild=True)
    assert not third.cached and apt.fetched
    with open(third.path, "rb") as archive:
        assert archive.read() == before
    assert first.image_id == second.image_id == third.image_id


def test_a_missing_library_stops_the_build(tmp_path: Any) -> None:
    graph = {**GRAPH, "app": ["libc6"]}
    with pytest.raises(ImageError, match=r"/usr/bin/app needs libfoo\.so\.1"):
        build(tmp_path, graph=graph)
    assert not os.path.exists(os.path.join(tmp_path, "out", "app.tar"))


def test_busybox_applets_link_to_the_binary(tmp_path: Any) -> None:
    recipe = dataclasses.replace(APP, name="bb", layers=(
        BASE_LAYER, LayerRecipe(packages=("busybox-static",), busybox_applets=True)))
    result, _ = build(tmp_path, recipe=recipe)
    with DockerArchive(result.path) as archive:
        image = archive.image()
        with archive.open_layer(image.layers[1]) as tar:
            links = {m.name: m.linkname for m in tar if m.issym()}
    assert links == {"usr/bin/sh": "busybox", "usr/sbin/ifconfig": "../bin/busybox",
                     "usr/bin/awk": "busybox"}


@pytest.mark.parametrize(("name", "merged"), [
    ("bin/sh", "usr/bin/sh"), ("lib64", "usr/lib64"), ("libexec/x", "libexec/x"),
    ("usr/bin/sh", "usr/bin/sh"), ("etc/passwd", "etc/passwd"),
])
def test_merged_usr(name: str, merged: str) -> None:
    assert merged_usr(name) == merged
