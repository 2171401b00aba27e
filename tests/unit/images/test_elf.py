"""ELF reading: the loader and sonames a program asks for, and no crash on anything else."""

from __future__ import annotations

import sys

from agent_runtime.images.elf import DynamicInfo, read_dynamic
from tests.harness.tars import make_elf


def test_interpreter_and_needed_libraries_in_order() -> None:
    data = make_elf("/lib64/ld-linux-x86-64.so.2", ["libssl.so.3", "libc.so.6"])
    assert read_dynamic(data) == DynamicInfo("/lib64/ld-linux-x86-64.so.2",
                                             ("libssl.so.3", "libc.so.6"))


def test_a_static_binary_needs_nothing() -> None:
    assert read_dynamic(make_elf()) == DynamicInfo("", ())


def test_this_python_needs_libc() -> None:
    with open(sys.executable, "rb") as binary:
        info = read_dynamic(binary.read())
    assert info is not None and info.interpreter.startswith("/lib")
    assert "libc.so.6" in info.needed


def test_non_elf_and_truncated_files_give_none() -> None:
    data = make_elf("/lib64/ld.so", ["libc.so.6"])
    assert read_dynamic(b"#!/bin/sh\necho hi\n") is None
    assert read_dynamic(b"") is None
    for cut in (10, 70, 200, len(data) - 5):
        assert read_dynamic(data[:cut]) in (None, DynamicInfo("/lib64/ld.so", ()))
