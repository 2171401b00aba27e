"""Check that every program in an image finds its loader and shared libraries, before writing it.

The package-level closure (library packages a package depends on) is how the builder chooses
what to unpack; this is the file-level proof that it was enough: starting from the ELF files in
the image's ``bin`` directories, follow ``PT_INTERP`` and ``DT_NEEDED`` through the directories
the Debian loader searches by default, resolving symlinks (merged /usr, sonames) within the
image. No ``ldd``: that would run the build host's loader against the host's libraries.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

from .elf import read_dynamic
from .errors import ImageError
from .layer import Entry, LayerTree
from .rootpath import LinkLoop, resolve

_BIN_DIRS = ("usr/bin/", "usr/sbin/", "usr/local/bin/", "usr/local/sbin/")


class _Dangling(Exception):
    """A component of a path is in no layer: ends a :meth:`RootView.resolve` walk."""


class RootView:
    """The image's files as the container sees them: upper layers over lower ones."""

    def __init__(self, layers: Sequence[LayerTree]) -> None:
        self.entries: dict[str, Entry] = {}
        for layer in layers:
            self.entries.update(layer.items())
        # Directories that hold entries but have none of their own (tar allows that).
        self.implied: set[str] = set()
        for name in self.entries:
            while (name := posixpath.dirname(name)) and name not in self.implied:
                self.implied.add(name)

    def resolve(self, path: str) -> str | None:
        """The real entry ``path`` names after following symlinks, or ``None`` if dangling."""

        def readlink(name: str) -> str | None:
            entry = self.entries.get(name)
            if entry is None and name not in self.implied:
                raise _Dangling(name)
            return entry.info.linkname if entry is not None and entry.info.issym() else None

        try:
            return resolve(path, readlink)
        except (_Dangling, LinkLoop):
            return None

    def library_dirs(self) -> list[str]:
        """The loader's default search path: the multiarch directories first (Debian's glibc
        searches ``/lib/<triplet>`` and ``/usr/lib/<triplet>``), then ``/lib``, ``/usr/lib``."""
        multiarch = sorted({posixpath.dirname(name) for name in self.entries
                            if name.startswith("usr/lib/") and name.count("/") == 3
                            and "-linux-" in name.split("/")[2]})
        return [*multiarch, *(d.replace("usr/lib", "lib", 1) for d in multiarch),
                "lib", "usr/lib", "lib64", "usr/lib64"]

    def regular(self, path: str) -> Entry | None:
        real = self.resolve(path)
        entry = self.entries.get(real) if real is not None else None
        return entry if entry is not None and entry.info.isreg() else None


def check_libraries(layers: Sequence[LayerTree], image: str) -> int:
    """Raise :class:`ImageError` naming the first unmet need; return how many ELF files were
    checked (programs and the libraries they pull in)."""
    view = RootView(layers)
    dirs = view.library_dirs()
    pending = sorted(name for name, entry in view.entries.items()
                     if name.startswith(_BIN_DIRS) and entry.info.isreg())
    checked: set[str] = set()
    while pending:
        name = pending.pop()
        real = view.resolve(name)
        if real is None or real in checked:
            continue
        checked.add(real)
        entry = view.entries[real]
        info = read_dynamic(entry.data) if entry.info.isreg() else None
        if info is None:
            continue  # scripts and data files
        if info.interpreter and view.regular(info.interpreter) is None:
            raise ImageError(f"{image}: /{name} needs the loader {info.interpreter}, "
                             "which the image does not have")
        for soname in info.needed:
            found = next((f"{d}/{soname}" for d in dirs if view.regular(f"{d}/{soname}")), None)
            if found is None:
                raise ImageError(f"{image}: /{name} needs {soname}, which no package in the "
                                 "image provides (add its package to the recipe)")
            pending.append(found)
    return len(checked)
