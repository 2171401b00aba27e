"""LayerTree: path normalisation, merge rules, and byte-for-byte reproducible tars."""

from __future__ import annotations

import hashlib
import tarfile

import pytest

from agent_runtime.images.errors import UnsafeEntry
from agent_runtime.images.layer import EPOCH, LayerTree, clean_name, digest
from tests.harness.tars import open_tar


@pytest.mark.parametrize(("raw", "clean"), [
    ("./usr/bin/", "usr/bin"), ("usr//bin/./sh", "usr/bin/sh"), ("./", ""), ("etc", "etc"),
])
def test_clean_name_normalises(raw: str, clean: str) -> None:
    assert clean_name(raw) == clean


@pytest.mark.parametrize("raw", ["/etc/passwd", "../x", "a/../../b", "a/..", "a\0b"])
def test_clean_name_refuses_escapes(raw: str) -> None:
    with pytest.raises(UnsafeEntry):
        clean_name(raw)


def _package_dir(name: str, mode: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, mtime
    return info


def test_a_directory_keeps_its_first_header_unless_set_by_add_dir() -> None:
    tree = LayerTree()
    tree.add(_package_dir("./usr/bin/", 0o755, 100))
    tree.add(_package_dir("usr/bin", 0o700, 200))
    entry = tree.get("usr/bin")
    assert entry is not None and (entry.info.mode, entry.info.mtime) == (0o755, 100)
    tree.add_dir("usr/bin", 0o711, uid=5, gid=6)
    entry = tree.get("usr/bin")
    assert entry is not None and (entry.info.mode, entry.info.uid, entry.info.gid) == \
        (0o711, 5, 6)


def test_later_files_replace_earlier_ones() -> None:
    tree = LayerTree()
    tree.add_file("etc/redis/redis.conf", b"daemonize yes\n")
    tree.add_file("etc/redis/redis.conf", b"daemonize no\n", mode=0o600)
    entry = tree.get("etc/redis/redis.conf")
    assert entry is not None and entry.data == b"daemonize no\n" and entry.info.mode == 0o600


def test_hard_links_become_copies_and_must_follow_their_target() -> None:
    tree = LayerTree()
    tree.add_file("usr/bin/a", b"payload", mode=0o755)
    link = tarfile.TarInfo("usr/bin/b")
    link.type, link.linkname = tarfile.LNKTYPE, "usr/bin/a"
    tree.add(link)
    copy = tree.get("usr/bin/b")
    assert copy is not None and copy.info.isreg() and copy.data == b"payload"
    dangling = tarfile.TarInfo("usr/bin/c")
    dangling.type, dangling.linkname = tarfile.LNKTYPE, "usr/bin/missing"
    with pytest.raises(UnsafeEntry, match="hard link"):
        tree.add(dangling)


def test_device_nodes_are_left_out() -> None:
    tree = LayerTree()
    node = tarfile.TarInfo("dev/null")
    node.type = tarfile.CHRTYPE
    tree.add(node)
    assert len(tree) == 0


def test_remove_drops_a_subtree() -> None:
    tree = LayerTree()
    for name in ("usr/share/doc/a/copyright", "usr/share/doc/b", "usr/share/docs"):
        tree.add_file(name, b"x")
    tree.remove("usr/share/doc")
    assert [name for name, _ in tree.items()] == ["usr/share/docs"]


def _tree(order: list[str]) -> LayerTree:
    tree = LayerTree()
    for name in order:
        tree.add_file(name, name.encode())
    tree.add_symlink("bin", "usr/bin")
    return tree


def test_to_tar_is_sorted_complete_and_reproducible() -> None:
    first = _tree(["usr/bin/sh", "etc/passwd", "usr/bin/busybox"]).to_tar()
    second = _tree(["usr/bin/busybox", "usr/bin/sh", "etc/passwd"]).to_tar()
    assert first == second
    assert digest(first) == "sha256:" + hashlib.sha256(first).hexdigest()
    with open_tar(first) as tar:
        members = tar.getmembers()
    names = [m.name.rstrip("/") for m in members]
    assert names == ["bin", "etc", "etc/passwd", "usr", "usr/bin", "usr/bin/busybox",
                     "usr/bin/sh"]  # parents were added, each before what it holds
    assert all(m.mtime == EPOCH and m.uid == 0 and m.uname == "" for m in members)
    assert members[0].issym() and members[0].linkname == "usr/bin"
