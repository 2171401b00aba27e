"""The archive reader: new layout, old layout, both; reference lookup; digest checks."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tarfile
from typing import Any

import pytest

from agent_runtime.images.archive import DockerArchive
from agent_runtime.images.errors import BadArchive
from agent_runtime.images.layer import digest
from tests.harness.tars import Item, make_tar, rewrite

from .test_docker_save import CONFIG, write


@pytest.fixture
def saved(tmp_path: Any) -> str:
    path = os.path.join(tmp_path, "redis.tar")
    write(path)
    return path


def _is_old_layout(name: str) -> bool:
    return name == "repositories" or "/" in name or (len(name) == 64 and "." not in name)


@pytest.mark.parametrize("layout", ["both", "manifest", "repositories"])
def test_every_layout_gives_the_same_image(saved: str, tmp_path: Any, layout: str) -> None:
    path = os.path.join(tmp_path, f"{layout}.tar")
    if layout == "manifest":  # what Docker >= 25 may write: no repositories, no v1 json
        rewrite(saved, path, lambda n: n != "repositories" and not n.endswith(("/json",
                                                                               "/VERSION")))
    elif layout == "repositories":  # what Docker < 1.10 wrote
        rewrite(saved, path, _is_old_layout)
    else:
        path = saved
    with DockerArchive(path) as archive:
        image = archive.image("redis")
        assert image.layout == ("repositories" if layout == "repositories" else "manifest")
        assert len(image.layers) == 2
        assert image.config == CONFIG
        assert (image.os, image.architecture) == ("linux", "amd64")
        archive.verify(image)
        digests = [archive.layer_digest(layer) for layer in image.layers]
    with DockerArchive(saved) as archive:
        assert digests == [layer.diff_id for layer in archive.image().layers]


@pytest.mark.parametrize("reference", ["redis", "redis:latest", "library/redis",
                                       "docker.io/library/redis:latest"])
def test_docker_hub_names_are_normalised(saved: str, reference: str) -> None:
    with DockerArchive(saved) as archive:
        assert archive.image(reference).repo_tags == ("redis:latest",)


def test_a_missing_tag_is_an_error_naming_what_is_there(saved: str) -> None:
    with DockerArchive(saved) as archive, pytest.raises(BadArchive, match="redis:latest"):
        archive.image("redis:7")


def test_verify_catches_a_tampered_layer(saved: str, tmp_path: Any) -> None:
    with DockerArchive(saved) as archive:
        member = archive.image().layers[1].member
    bad = os.path.join(tmp_path, "bad.tar")
    tampered = make_tar([Item("usr/bin/redis-server", data=b"#!/bin/sh\nrm -rf /\n")])
    rewrite(saved, bad, lambda _: True, {member: tampered})
    with DockerArchive(bad) as archive:
        image = archive.image()
        with pytest.raises(BadArchive, match="does not match"):
            archive.verify(image)


def _single_layer_archive(path: str, layer: bytes, diff_id: str) -> None:
    config = json.dumps({"os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                         "config": {"Cmd": ["sh"]}}).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": ["x:latest"],
                            "Layers": ["blobs/layer"]}]).encode()
    with open(path, "wb") as out:
        out.write(make_tar([Item(config_name, data=config), Item("manifest.json", data=manifest),
                            Item("blobs/layer", data=layer)]))


def test_gzip_layers_are_read_and_digested_uncompressed(tmp_path: Any) -> None:
    layer = make_tar([Item("hello", data=b"hi\n")])
    path = os.path.join(tmp_path, "x.tar")
    _single_layer_archive(path, gzip.compress(layer, mtime=0), digest(layer))
    with DockerArchive(path) as archive:
        image = archive.image("x")
        archive.verify(image)
        archive.extract_rootfs(image, os.path.join(tmp_path, "rootfs"))
    with open(os.path.join(tmp_path, "rootfs", "hello"), "rb") as extracted:
        assert extracted.read() == b"hi\n"


@pytest.mark.parametrize(("items", "message"), [
    ([], "neither manifest.json nor repositories"),
    ([Item("manifest.json", data=b"{")], "not valid JSON"),
    ([Item("manifest.json", data=b"{}")], "non-empty list"),
    ([Item("manifest.json", data=b'[{"Config": "c.json", "Layers": ["l.tar"]}]')],
     "no file 'c.json'"),
    ([Item("repositories", data=b'{"x": {"latest": "a"}}'),
      Item("a/json", data=b'{"parent": "b"}'), Item("a/layer.tar"),
      Item("b/json", data=b'{"parent": "a"}'), Item("b/layer.tar")], "loop"),
    ([Item("repositories", data=b'{"x": {"latest": "a"}}'), Item("a/json", data=b"{}")],
     "no layer 'a/layer.tar'"),
])
def test_malformed_archives_are_refused_with_a_reason(tmp_path: Any, items: list[Item],
                                                      message: str) -> None:
    path = os.path.join(tmp_path, "bad.tar")
    with open(path, "wb") as out:
        out.write(make_tar(items))
    with pytest.raises(BadArchive, match=message):
        DockerArchive(path)


def test_layer_count_must_match_the_diff_ids(tmp_path: Any) -> None:
    path = os.path.join(tmp_path, "x.tar")
    _single_layer_archive(path, make_tar([]), digest(b""))
    with tarfile.open(path) as tar:
        names = tar.getnames()
    assert "blobs/layer" in names
    other = os.path.join(tmp_path, "y.tar")
    config = json.dumps({"rootfs": {"diff_ids": []}}).encode()
    rewrite(path, other, lambda _: True,
            {next(n for n in names if n.endswith(".json") and n != "manifest.json"): config})
    with pytest.raises(BadArchive, match="1 layers but 0 diff_ids"):
        DockerArchive(other)


def test_an_archive_with_several_images_needs_a_name(saved: str, tmp_path: Any) -> None:
    path = os.path.join(tmp_path, "two.tar")
    with tarfile.open(saved) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    twice = [manifest[0], {**manifest[0], "RepoTags": ["other:1"]}]
    rewrite(saved, path, lambda _: True, {"manifest.json": json.dumps(twice).encode()})
    with DockerArchive(path) as archive:
        with pytest.raises(BadArchive, match="holds 2 images"):
            archive.image()
        assert archive.image("other:1").repo_tags == ("other:1",)


def test_not_an_archive(tmp_path: Any) -> None:
    path = os.path.join(tmp_path, "x.tar")
    with open(path, "w") as out:
        out.write("hello")
    with pytest.raises(BadArchive, match="not a tar archive"):
        DockerArchive(path)
