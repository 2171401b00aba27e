"""The one resolver of paths inside an image's root: on disk and over in-memory entries alike."""

from __future__ import annotations

import os
from typing import Any

import pytest

from agent_runtime.images.rootpath import MAX_SYMLINKS, LinkLoop, resolve, secure_join


def links(table: dict[str, str]) -> Any:
    """A ``readlink`` over an in-memory tree: ``table`` maps link names to targets."""
    return table.get


@pytest.mark.parametrize(("path", "table", "expected"), [
    ("usr/bin/sh", {}, "usr/bin/sh"),
    ("./usr//bin/./sh/", {}, "usr/bin/sh"),
    ("bin/sh", {"bin": "usr/bin"}, "usr/bin/sh"),
    ("lib/x", {"lib": "/usr/lib"}, "usr/lib/x"),
    ("a/abs/etc", {"a/abs": "/"}, "etc"),
    ("a/b/up/etc", {"a/b/up": "../../../../../.."}, "etc"),
    ("../../../etc/passwd", {}, "etc/passwd"),
    ("a/../../b/../../c", {}, "c"),
    ("x/y", {"x": "/host/../../etc", "etc/y": "../../root"}, "root"),
    ("a/link/..", {"a/link": "/deep/er"}, "deep"),
])
def test_links_and_dot_dots_never_leave_the_root(path: str, table: dict[str, str],
                                                 expected: str) -> None:
    assert resolve(path, links(table)) == expected


def test_a_loop_is_refused_and_a_chain_as_long_as_linux_allows_is_not() -> None:
    with pytest.raises(LinkLoop, match="too many levels"):
        resolve("loop/x", links({"loop": "loop"}))
    with pytest.raises(LinkLoop):
        resolve("a", links({"a": "b", "b": "/a"}))
    chain = {f"l{i}": f"l{i + 1}" for i in range(MAX_SYMLINKS)}
    assert resolve("l0", links(chain)) == f"l{MAX_SYMLINKS}"
    chain[f"l{MAX_SYMLINKS}"] = "end"
    with pytest.raises(LinkLoop):
        resolve("l0", links(chain))


def test_deep_links_clamp_and_count_every_hop_on_the_path() -> None:
    deep = "/".join(f"d{i}" for i in range(60))
    assert resolve(f"{deep}/up/etc", links({f"{deep}/up": "../" * 200})) == "etc"
    # Links met in different components count together, as the kernel counts them per path.
    each = {f"c{i}": f"r{i}" for i in range(MAX_SYMLINKS + 1)}
    path = "/".join(f"c{i}" for i in range(MAX_SYMLINKS))
    expected = "/".join(f"r{i}" for i in range(MAX_SYMLINKS))
    assert resolve(path, lambda name: each.get(name.rpartition("/")[2])) == expected
    with pytest.raises(LinkLoop):
        resolve(f"{path}/c{MAX_SYMLINKS}", lambda name: each.get(name.rpartition("/")[2]))


def test_secure_join_follows_the_links_on_disk_and_clamps_at_the_root(tmp_path: Any) -> None:
    root = str(tmp_path / "root")
    outside = str(tmp_path / "outside")
    os.makedirs(os.path.join(root, "a"))
    os.mkdir(outside)
    os.symlink(outside, os.path.join(root, "host"))
    os.symlink("../../..", os.path.join(root, "a", "up"))
    os.symlink("up/etc", os.path.join(root, "a", "etc"))
    os.symlink("self", os.path.join(root, "self"))
    assert secure_join(root, "host/file") == os.path.join(root, outside.lstrip("/"), "file")
    assert secure_join(root, "a/up") == root
    assert secure_join(root, "a/etc/passwd") == os.path.join(root, "etc", "passwd")
    assert secure_join(root, "") == root
    with pytest.raises(LinkLoop):
        secure_join(root, "self/x")
    # A file used as a directory is not a link: the caller's open then fails, inside the root.
    with open(os.path.join(root, "file"), "w"):
        pass
    assert secure_join(root, "file/x") == os.path.join(root, "file", "x")
