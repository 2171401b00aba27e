"""Fixtures for the provisioner and store tests: the offline busybox and redis images, in the
layout ``mesos-images`` writes (``manifest.json`` and ``repositories``) and in the old one only."""

from __future__ import annotations

import os
import tarfile

import pytest


@pytest.fixture(scope="session")
def images_dir(offline_images_dir: str) -> str:
    """``busybox.tar`` and ``redis.tar`` (manifest.json wins when a reader sees both)."""
    return offline_images_dir


def _old_layout(source: str, dest: str) -> None:
    """Keep what Docker < 1.10 wrote: ``repositories`` and the ``<id>/`` directories."""
    with tarfile.open(source) as old, tarfile.open(dest, "w") as new:
        for member in old.getmembers():
            name = member.name.rstrip("/")
            if name == "repositories" or "/" in name or member.isdir():
                new.addfile(member, old.extractfile(member) if member.isreg() else None)


@pytest.fixture(scope="session")
def old_images_dir(images_dir: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The same images with neither ``manifest.json`` nor the config JSON."""
    out = str(tmp_path_factory.mktemp("old-layout-images"))
    for name in ("busybox", "redis"):
        _old_layout(os.path.join(images_dir, f"{name}.tar"), os.path.join(out, f"{name}.tar"))
    return out
