"""The file-level library check that guards every build."""

from __future__ import annotations

import pytest

from agent_runtime.images.errors import ImageError
from agent_runtime.images.layer import LayerTree
from agent_runtime.images.library_closure import RootView, check_libraries
from tests.harness.tars import make_elf

LOADER = "/lib64/ld-linux-x86-64.so.2"
MULTIARCH = "usr/lib/x86_64-linux-gnu"


def base() -> LayerTree:
    """Merged /usr, a loader reached through two links, libc, as Debian 12 lays them out."""
    tree = LayerTree()
    tree.add_symlink("lib", "usr/lib")
    tree.add_symlink("lib64", "usr/lib64")
    tree.add_symlink("usr/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    tree.add_file(f"{MULTIARCH}/ld-linux-x86-64.so.2", make_elf())
    tree.add_file(f"{MULTIARCH}/libc.so.6", make_elf(LOADER, ["ld-linux-x86-64.so.2"]))
    return tree


def program(*needed: str) -> LayerTree:
    tree = LayerTree()
    tree.add_file("usr/bin/prog", make_elf(LOADER, ["libc.so.6", *needed]), mode=0o755)
    return tree


def test_a_complete_image_passes_through_symlinks_and_layers() -> None:
    top = program("libfoo.so.1")
    top.add_symlink(f"{MULTIARCH}/libfoo.so.1", "libfoo.so.1.2.3")
    top.add_file(f"{MULTIARCH}/libfoo.so.1.2.3", make_elf("", ["libc.so.6"]))
    assert check_libraries([base(), top], "test") >= 4


def test_a_missing_library_names_the_program_and_the_soname() -> None:
    with pytest.raises(ImageError, match=r"/usr/bin/prog needs libfoo\.so\.1"):
        check_libraries([base(), program("libfoo.so.1")], "test")


def test_a_missing_loader_is_reported() -> None:
    with pytest.raises(ImageError, match="needs the loader"):
        check_libraries([program()], "test")


def test_a_library_needed_by_a_library_is_checked_too() -> None:
    top = program("libfoo.so.1")
    top.add_file(f"{MULTIARCH}/libfoo.so.1", make_elf("", ["libbar.so.2"]))
    with pytest.raises(ImageError, match=r"libbar\.so\.2"):
        check_libraries([base(), top], "test")


def test_an_upper_layer_overrides_a_lower_one_and_links_resolve() -> None:
    view = RootView([base(), program()])
    assert view.resolve("lib64/ld-linux-x86-64.so.2") == f"{MULTIARCH}/ld-linux-x86-64.so.2"
    assert view.resolve("lib/missing") is None
    assert view.library_dirs()[:2] == [MULTIARCH, "lib/x86_64-linux-gnu"]
