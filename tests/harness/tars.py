"""Hand-made tars and ELF files, including malformed and hostile ones the builder never makes."""

from __future__ import annotations

import io
import struct
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Item:
    name: str
    kind: bytes = tarfile.REGTYPE
    data: bytes = b""
    linkname: str = ""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: int = 1_600_000_000


def make_tar(items: Sequence[Item]) -> bytes:
    """A tar with ``items`` in the order given, names taken verbatim (``..`` and all)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for item in items:
            info = tarfile.TarInfo(item.name)
            info.type, info.linkname, info.mode = item.kind, item.linkname, item.mode
            info.uid, info.gid, info.mtime = item.uid, item.gid, item.mtime
            info.size = len(item.data) if item.kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(item.data) if item.kind == tarfile.REGTYPE else None)
    return buffer.getvalue()


def rewrite(source: str, dest: str, keep: Callable[[str], bool],
            replace: dict[str, bytes] | None = None) -> None:
    """Copy the archive ``source`` to ``dest`` keeping some members and replacing others."""
    replace = replace or {}
    with tarfile.open(source) as old, tarfile.open(dest, "w") as new:
        for member in old.getmembers():
            name = member.name.rstrip("/")
            if not keep(name):
                continue
            data = replace.get(name, b"")
            if name not in replace and member.isreg():
                data = old.extractfile(member).read()  # type: ignore[union-attr]
            member.size = len(data)
            new.addfile(member, io.BytesIO(data) if member.isreg() else None)


def open_tar(data: bytes) -> tarfile.TarFile:
    return tarfile.open(fileobj=io.BytesIO(data), mode="r:")


def make_elf(interpreter: str = "", needed: Sequence[str] = ()) -> bytes:
    """A minimal little-endian ELF64 with PT_INTERP, one PT_LOAD mapping the whole file at
    0x400000, and a PT_DYNAMIC listing ``needed`` (or none of those when not asked for)."""
    base, header_size, ph_size = 0x400000, 64, 56
    strtab = b"\0" + b"".join(name.encode() + b"\0" for name in needed)
    offsets = [1 + sum(len(n) + 1 for n in needed[:i]) for i in range(len(needed))]
    interp = interpreter.encode() + b"\0" if interpreter else b""
    phnum = 1 + bool(interp) + bool(needed)
    interp_off = header_size + phnum * ph_size
    strtab_off = interp_off + len(interp)
    dynamic_off = strtab_off + len(strtab)
    dynamic = b"".join(struct.pack("<qQ", 1, offset) for offset in offsets)
    dynamic += struct.pack("<qQ", 5, base + strtab_off) + struct.pack("<qQ", 0, 0)
    total = dynamic_off + (len(dynamic) if needed else 0)
    header = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    header += struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, base, header_size, 0, 0, header_size,
                          ph_size, phnum, 64, 0, 0)
    phdrs = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, total, total, 0x1000)
    if interp:
        phdrs += struct.pack("<IIQQQQQQ", 3, 4, interp_off, base + interp_off,
                             base + interp_off, len(interp), len(interp), 1)
    if needed:
        phdrs += struct.pack("<IIQQQQQQ", 2, 6, dynamic_off, base + dynamic_off,
                             base + dynamic_off, len(dynamic), len(dynamic), 8)
    body = header + phdrs + interp + strtab + (dynamic if needed else b"")
    assert len(body) == total
    return body
