"""The docker save writer: both layouts, correct digests, the same bytes every time."""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from typing import Any

import pytest

from agent_runtime.images.docker_save import (
    CREATED,
    SavedImage,
    SavedLayer,
    canonical_json,
    chain_ids,
    write_docker_save,
)
from agent_runtime.images.image_config import RuntimeConfig
from agent_runtime.images.layer import LayerTree, digest

CONFIG = RuntimeConfig(cmd=("redis-server", "/etc/redis/redis.conf"), env=("PATH=/usr/bin",),
                       working_dir="/data", exposed_ports=("6379/tcp",))


def layers() -> list[SavedLayer]:
    base, top = LayerTree(), LayerTree()
    base.add_file("etc/os-release", b"ID=debian\n")
    base.add_symlink("bin", "usr/bin")
    top.add_file("usr/bin/redis-server", b"\x7fELF...", mode=0o755)
    return [SavedLayer(base.to_tar(), "base"), SavedLayer(top.to_tar(), "redis")]


def write(path: str) -> SavedImage:
    return write_docker_save(path, "redis", "latest", layers(), CONFIG, "amd64",
                             aliases=("library/redis",))


def read_members(path: str) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name.rstrip("/"): (tar.extractfile(m).read() if m.isreg() else b"")  # type: ignore[union-attr]
                for m in tar.getmembers()}


def test_new_layout_manifest_config_and_digests(tmp_path: Any) -> None:
    path = os.path.join(tmp_path, "redis.tar")
    saved = write(path)
    files = read_members(path)
    manifest = json.loads(files["manifest.json"])
    assert len(manifest) == 1 and manifest[0]["RepoTags"] == ["redis:latest"]
    config_name = manifest[0]["Config"]
    config_bytes = files[config_name]
    assert config_name == hashlib.sha256(config_bytes).hexdigest() + ".json"
    assert saved.image_id == "sha256:" + config_name.removesuffix(".json")
    config = json.loads(config_bytes)
    layer_tars = [files[name] for name in manifest[0]["Layers"]]
    assert config["rootfs"] == {"type": "layers",
                                "diff_ids": [digest(tar) for tar in layer_tars]}
    assert list(saved.diff_ids) == config["rootfs"]["diff_ids"]
    assert config["config"] == {"Cmd": ["redis-server", "/etc/redis/redis.conf"],
                                "Env": ["PATH=/usr/bin"], "WorkingDir": "/data",
                                "ExposedPorts": {"6379/tcp": {}}}
    assert (config["os"], config["architecture"], config["created"]) == ("linux", "amd64", CREATED)
    assert [h["created_by"] for h in config["history"]] == ["base", "redis"]


def test_old_layout_repositories_and_parent_chain(tmp_path: Any) -> None:
    path = os.path.join(tmp_path, "redis.tar")
    saved = write(path)
    files = read_members(path)
    repositories = json.loads(files["repositories"])
    top = saved.layer_ids[-1]
    assert repositories == {"redis": {"latest": top}, "library/redis": {"latest": top}}
    base_meta = json.loads(files[f"{saved.layer_ids[0]}/json"])
    top_meta = json.loads(files[f"{top}/json"])
    assert "parent" not in base_meta and top_meta["parent"] == saved.layer_ids[0]
    assert base_meta["id"] == saved.layer_ids[0] and top_meta["id"] == top
    assert top_meta["config"]["Cmd"] == ["redis-server", "/etc/redis/redis.conf"]
    for layer_id, diff_id in zip(saved.layer_ids, saved.diff_ids, strict=True):
        assert files[f"{layer_id}/VERSION"] == b"1.0"
        assert digest(files[f"{layer_id}/layer.tar"]) == diff_id


def test_archive_entries_are_sorted_with_fixed_metadata(tmp_path: Any) -> None:
    path = os.path.join(tmp_path, "redis.tar")
    write(path)
    with tarfile.open(path) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names)
    assert {(m.mtime, m.uid, m.gid, m.uname) for m in members} == {(0, 0, 0, "")}


def test_two_writes_give_identical_bytes(tmp_path: Any) -> None:
    first, second = os.path.join(tmp_path, "a.tar"), os.path.join(tmp_path, "b.tar")
    assert write(first).image_id == write(second).image_id
    with open(first, "rb") as a, open(second, "rb") as b:
        assert a.read() == b.read()
    assert not [name for name in os.listdir(tmp_path) if ".tmp" in name]


def test_layer_ids_depend_on_everything_below() -> None:
    one, two = digest(b"one"), digest(b"two")
    assert chain_ids([one]) == [one]
    assert chain_ids([one, two])[1] == digest(f"{one} {two}".encode())
    assert chain_ids([two, two])[1] != chain_ids([one, two])[1]


def test_an_image_needs_a_layer(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match="at least one layer"):
        write_docker_save(os.path.join(tmp_path, "x.tar"), "x", "latest", [], CONFIG, "amd64")


def test_runtime_config_round_trips_through_docker_json() -> None:
    full = RuntimeConfig(cmd=("sh",), entrypoint=("tini", "--"), env=("A=1",), working_dir="/w",
                         exposed_ports=("53/udp", "80/tcp"), user="nobody")
    assert RuntimeConfig.from_docker(json.loads(canonical_json(full.to_docker()))) == full
    assert RuntimeConfig().to_docker() == {}
    assert RuntimeConfig.from_docker(None) == RuntimeConfig()
    assert RuntimeConfig.from_docker({"Cmd": "sh"}).cmd == ("sh",)
