"""Finding the processes a test started, by what their command lines carry."""

from __future__ import annotations

import contextlib

import psutil


def pids_with(marker: str) -> list[int]:
    """Processes whose command line carries ``marker``."""
    return [p.pid for p in psutil.process_iter(["cmdline"])
            if marker in " ".join(p.info["cmdline"] or [])]


def with_argv(*argv: str) -> list[psutil.Process]:
    """Processes whose command line is exactly ``argv``."""
    return [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == list(argv)]


def in_directory(directory: str) -> list[int]:
    """Processes whose working directory is ``directory`` (an executor runs in its sandbox)."""
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if process.cwd() == directory:
                found.append(process.pid)
    return found
