"""Just enough ELF to list what a binary needs from the dynamic loader.

An image built from packages is only as good as its library closure: a missing ``libfoo.so.1``
shows up as a task that dies at exec. Reading ``PT_INTERP`` and ``DT_NEEDED`` from the files
themselves (rather than running ``ldd``, which would load the build host's libraries) lets the
builder check the closure before writing anything.
"""

from __future__ import annotations

import dataclasses
import struct

_ELF_MAGIC = b"\x7fELF"
_PT_LOAD, _PT_DYNAMIC, _PT_INTERP = 1, 2, 3
_DT_NULL, _DT_NEEDED, _DT_STRTAB = 0, 1, 5


@dataclasses.dataclass(frozen=True)
class DynamicInfo:
    interpreter: str  # PT_INTERP, e.g. "/lib64/ld-linux-x86-64.so.2"; "" for static binaries
    needed: tuple[str, ...]  # DT_NEEDED sonames, in order


def is_elf(data: bytes) -> bool:
    return data[:4] == _ELF_MAGIC


def _cstring(data: bytes, offset: int) -> str:
    end = data.find(b"\0", offset)
    if offset < 0 or end < 0:
        raise ValueError("string runs off the end of the file")
    return data[offset:end].decode("utf-8", "replace")


def read_dynamic(data: bytes) -> DynamicInfo | None:
    """The loader needs of the ELF file in ``data``; ``None`` if it is not ELF or is truncated."""
    if not is_elf(data) or len(data) < 64:
        return None
    wide = data[4] == 2  # EI_CLASS: 1 is 32-bit, 2 is 64-bit
    order = "<" if data[5] == 1 else ">"  # EI_DATA: 1 is little-endian
    try:
        if wide:
            phoff, = struct.unpack_from(order + "Q", data, 0x20)
            phentsize, phnum = struct.unpack_from(order + "HH", data, 0x36)
            ph_format, dyn_format = order + "IIQQQQQQ", order + "qQ"
        else:
            phoff, = struct.unpack_from(order + "I", data, 0x1C)
            phentsize, phnum = struct.unpack_from(order + "HH", data, 0x2A)
            ph_format, dyn_format = order + "IIIIIIII", order + "iI"
        loads: list[tuple[int, int, int]] = []  # (vaddr, offset, filesz)
        interpreter, dynamic = "", None
        for index in range(phnum):
            fields = struct.unpack_from(ph_format, data, phoff + index * phentsize)
            if wide:
                p_type, _, p_offset, p_vaddr, _, p_filesz = fields[:6]
            else:
                p_type, p_offset, p_vaddr, _, p_filesz = fields[:5]
            if p_type == _PT_LOAD:
                loads.append((p_vaddr, p_offset, p_filesz))
            elif p_type == _PT_INTERP:
                interpreter = _cstring(data, p_offset)
            elif p_type == _PT_DYNAMIC:
                dynamic = (p_offset, p_filesz)
        if dynamic is None:
            return DynamicInfo(interpreter, ())
        entry_size = struct.calcsize(dyn_format)
        needed_offsets: list[int] = []
        strtab_vaddr = None
        for offset in range(dynamic[0], dynamic[0] + dynamic[1], entry_size):
            tag, value = struct.unpack_from(dyn_format, data, offset)
            if tag == _DT_NULL:
                break
            if tag == _DT_NEEDED:
                needed_offsets.append(value)
            elif tag == _DT_STRTAB:
                strtab_vaddr = value
        if strtab_vaddr is None:
            return DynamicInfo(interpreter, ())
        # DT_STRTAB is an address in memory: find the segment that maps it to get a file offset.
        strtab = next(offset + strtab_vaddr - vaddr for vaddr, offset, size in loads
                      if vaddr <= strtab_vaddr < vaddr + size)
        return DynamicInfo(interpreter, tuple(_cstring(data, strtab + n) for n in needed_offsets))
    except (struct.error, ValueError, StopIteration):
        return None
