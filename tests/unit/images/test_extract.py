"""Layer extraction: hostile entries stay inside the root or are refused; whiteouts apply."""

from __future__ import annotations

import os
import stat
import tarfile
from typing import Any

import pytest

from agent_runtime.images.errors import BadArchive, ImageError, UnsafeEntry
from agent_runtime.images.extract import extract_layer
from agent_runtime.images.rootpath import secure_join
from tests.harness.tars import Item, make_tar, open_tar

SYM, LNK, DIR = tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.DIRTYPE


def apply(root: str, *items: Item) -> None:
    with open_tar(make_tar(items)) as tar:
        extract_layer(tar, root)


@pytest.fixture
def root(tmp_path: Any) -> str:
    return os.path.join(tmp_path, "rootfs")


@pytest.fixture
def outside(tmp_path: Any) -> str:
    path = os.path.join(tmp_path, "outside")
    os.mkdir(path)
    return path


@pytest.mark.parametrize("item", [
    Item("/etc/passwd", data=b"x"),
    Item("../escaped", data=b"x"),
    Item("a/../../escaped", data=b"x"),
    Item("link", kind=SYM, linkname="../../escaped"),
    Item("a/b/link", kind=SYM, linkname="../../../escaped"),
    Item("hard", kind=LNK, linkname="../outside/secret"),
    Item("hard", kind=LNK, linkname="/etc/passwd"),
    Item("hard", kind=LNK, linkname="missing"),
    Item("a/.wh..", data=b""),
])
def test_escaping_entries_are_refused(root: str, outside: str, item: Item) -> None:
    with pytest.raises(UnsafeEntry):
        apply(root, Item("a", kind=DIR, mode=0o755), item)
    assert os.listdir(outside) == []
    assert not os.path.exists(os.path.join(os.path.dirname(root), "escaped"))


def test_relative_links_inside_the_root_are_kept(root: str) -> None:
    apply(root, Item("usr/bin/busybox", data=b"bb", mode=0o755),
          Item("usr/sbin/ifconfig", kind=SYM, linkname="../bin/busybox"),
          Item("usr/bin/sh", kind=LNK, linkname="usr/bin/busybox"))
    assert os.readlink(os.path.join(root, "usr/sbin/ifconfig")) == "../bin/busybox"
    assert os.stat(os.path.join(root, "usr/bin/sh")).st_ino == \
        os.stat(os.path.join(root, "usr/bin/busybox")).st_ino


def test_writes_through_an_absolute_symlink_stay_in_the_root(root: str, outside: str) -> None:
    # A link to the host's path, then a file "under" it: it lands in root/<outside>, not outside.
    apply(root, Item("evil", kind=SYM, linkname=outside))
    apply(root, Item("evil/planted", data=b"gotcha"))
    assert os.listdir(outside) == []
    inside = os.path.join(root, outside.lstrip("/"), "planted")
    with open(inside, "rb") as planted:
        assert planted.read() == b"gotcha"


def test_an_existing_symlink_is_replaced_not_written_through(root: str, outside: str) -> None:
    target = os.path.join(outside, "victim")
    with open(target, "w") as victim:
        victim.write("safe")
    os.makedirs(root)
    os.symlink(target, os.path.join(root, "file"))
    apply(root, Item("file", data=b"new"))
    with open(target) as victim:
        assert victim.read() == "safe"
    assert not os.path.islink(os.path.join(root, "file"))


def test_secure_join_clamps_at_the_root(root: str) -> None:
    os.makedirs(os.path.join(root, "a"))
    os.symlink("../../../..", os.path.join(root, "a", "up"))
    os.symlink("/", os.path.join(root, "abs"))
    assert secure_join(root, "a/up/etc") == os.path.join(root, "etc")
    assert secure_join(root, "abs/a/../../x") == os.path.join(root, "x")
    os.symlink("loop", os.path.join(root, "loop"))
    with pytest.raises(UnsafeEntry, match="symbolic links"):
        secure_join(root, "loop/x")


def test_whiteouts_delete_lower_files_and_opaque_dirs_keep_their_own_layer(root: str) -> None:
    apply(root, Item("etc/old.conf", data=b"1"), Item("etc/keep.conf", data=b"1"),
          Item("var/cache/a", data=b"1"), Item("var/cache/b", data=b"1"))
    apply(root, Item("var/cache/new", data=b"2"), Item("etc/.wh.old.conf"),
          Item("var/cache/.wh..wh..opq"))
    assert sorted(os.listdir(os.path.join(root, "etc"))) == ["keep.conf"]
    assert os.listdir(os.path.join(root, "var/cache")) == ["new"]


def test_modes_times_and_owners_are_applied(root: str) -> None:
    apply(root, Item("usr", kind=DIR, mode=0o755, mtime=1000),
          Item("usr/bin/su", data=b"x", mode=0o4755, uid=1, gid=2, mtime=2000),
          Item("tmp", kind=DIR, mode=0o1777), Item("run/fifo", kind=tarfile.FIFOTYPE),
          Item("dev/null", kind=tarfile.CHRTYPE))
    info = os.stat(os.path.join(root, "usr/bin/su"))
    assert stat.S_IMODE(info.st_mode) == 0o4755 and info.st_mtime == 2000
    assert os.stat(os.path.join(root, "usr")).st_mtime == 1000
    assert stat.S_IMODE(os.stat(os.path.join(root, "tmp")).st_mode) == 0o1777
    assert stat.S_ISFIFO(os.stat(os.path.join(root, "run/fifo")).st_mode)
    assert not os.path.exists(os.path.join(root, "dev/null"))  # devices come from the isolator
    if os.geteuid() == 0:
        assert (info.st_uid, info.st_gid) == (1, 2)


def test_a_later_layer_replaces_a_directory_with_a_file_and_back(root: str) -> None:
    apply(root, Item("x/inner", data=b"1"))
    apply(root, Item("x", data=b"now a file"))
    assert os.path.isfile(os.path.join(root, "x"))
    apply(root, Item("x", kind=DIR, mode=0o700))
    assert os.path.isdir(os.path.join(root, "x"))


def test_filesystem_errors_name_the_entry(root: str) -> None:
    apply(root, Item("file", data=b"x"))
    with pytest.raises(ImageError, match="cannot extract 'file/inner'"):
        apply(root, Item("file/inner", data=b"y"))


@pytest.mark.parametrize("item", [
    Item("usr/bin/tool", data=b"x", mtime=10**20),
    Item("usr", kind=DIR, mode=0o755, mtime=10**20),
    Item("usr/bin/tool", data=b"x", uid=2**40),
    Item("usr/bin/tool", data=b"x", gid=2**40),
])
def test_header_values_out_of_range_are_a_bad_archive_naming_the_entry(root: str,
                                                                       item: Item) -> None:
    if (item.uid or item.gid) and os.geteuid() != 0:
        pytest.skip("ownership is only applied as root")
    with pytest.raises(BadArchive, match=f"tar entry '{item.name}' cannot be extracted"):
        apply(root, Item("usr/bin", kind=DIR, mode=0o755), item)


def test_a_hard_link_to_a_symlink_never_changes_what_the_symlink_points_at(
        root: str, outside: str) -> None:
    """The reported attack: ``evil -> <host file>``, then a hard link ``h`` to ``evil`` with mode
    4777 made the host file setuid and world-writable."""
    victim = os.path.join(outside, "victim")
    with open(victim, "w") as handle:
        handle.write("host")
    os.chmod(victim, 0o644)
    os.utime(victim, (5, 5))
    before = os.stat(victim)
    apply(root, Item("evil", kind=SYM, linkname=victim),
          Item("h", kind=LNK, linkname="evil", mode=0o4777, uid=1234, gid=1234, mtime=99))
    after = os.stat(victim)
    assert stat.S_IMODE(after.st_mode) == 0o644
    assert (after.st_uid, after.st_gid, after.st_mtime) == (before.st_uid, before.st_gid, 5)
    # ``h`` is the symlink itself, a second name for the link inside the layer.
    assert os.readlink(os.path.join(root, "h")) == victim
    assert os.lstat(os.path.join(root, "h")).st_ino == os.lstat(os.path.join(root, "evil")).st_ino


def test_the_same_attack_across_two_layers_of_one_root(root: str, outside: str) -> None:
    victim = os.path.join(outside, "victim")
    with open(victim, "w"):
        pass
    os.chmod(victim, 0o600)
    apply(root, Item("etc/shadow", kind=SYM, linkname=victim))
    apply(root, Item("etc/x", kind=LNK, linkname="etc/shadow", mode=0o6777),
          Item("etc/shadow", kind=LNK, linkname="etc/x", mode=0o777))
    assert stat.S_IMODE(os.stat(victim).st_mode) == 0o600


def test_a_directory_replaced_by_a_symlink_does_not_date_the_host(root: str,
                                                                  outside: str) -> None:
    # Directory mtimes are set at the end: by then "d" is a link to the host, whose "sub"
    # must keep its time.
    os.mkdir(os.path.join(outside, "sub"))
    os.utime(os.path.join(outside, "sub"), (7, 7))
    apply(root, Item("d", kind=DIR, mode=0o755), Item("d/sub", kind=DIR, mode=0o700, mtime=1000),
          Item("d", kind=SYM, linkname=outside))
    assert os.stat(os.path.join(outside, "sub")).st_mtime == 7


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE])
def test_device_nodes_are_not_made_even_through_a_link(root: str, outside: str,
                                                      kind: bytes) -> None:
    apply(root, Item("dev", kind=SYM, linkname=outside), Item("dev/sda", kind=kind))
    assert os.listdir(outside) == []
    assert not os.path.lexists(os.path.join(root, outside.lstrip("/"), "sda"))
