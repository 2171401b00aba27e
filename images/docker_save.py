"""Write a ``docker save`` archive holding both the new and the old layout.

::

    manifest.json         [{"Config": "<config hex>.json", "RepoTags": [...], "Layers": [...]}]
    <config hex>.json     image config: runtime config, rootfs.diff_ids, history, os, arch
    repositories          {"<repository>": {"<tag>": "<top layer id>"}}
    <layer id>/VERSION    "1.0"
    <layer id>/json       v1 layer metadata: id, parent, created (+ config on the top one)
    <layer id>/layer.tar  the uncompressed layer

``docker load`` and most readers use ``manifest.json``; Mesos's tar puller (``image_tar_puller``)
only reads ``repositories`` and walks the ``parent`` links of each ``<layer id>/json``, so both are
written. Layer ids are chained like Docker's v1 ids (each hashes its parent), so a layer shared by
two images has one id only when everything below it is shared too.

Every byte is a function of the inputs: JSON has sorted keys and no spaces, entries are sorted,
timestamps are :data:`.layer.EPOCH`. Two builds give the same image id.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Sequence
from typing import Any

from .image_config import RuntimeConfig
from .layer import EPOCH, digest

CREATED = "1970-01-01T00:00:00Z"
"""``created`` of every image and layer we write, matching :data:`EPOCH`."""


@dataclasses.dataclass(frozen=True)
class SavedLayer:
    tar: bytes  # the uncompressed layer tar
    created_by: str  # its history line: what made it


@dataclasses.dataclass(frozen=True)
class SavedImage:
    """What :func:`write_docker_save` wrote."""

    path: str
    image_id: str  # sha256:<hex> of the image config, as ``docker images --no-trunc`` shows
    diff_ids: tuple[str, ...]  # bottom layer first
    layer_ids: tuple[str, ...]  # the old layout's directory names, bottom first
    size: int  # bytes of the archive


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """OCI chain ids: a layer's identity together with every layer under it."""
    chains: list[str] = []
    for diff_id in diff_ids:
        chains.append(diff_id if not chains else digest(f"{chains[-1]} {diff_id}".encode()))
    return chains


def _v1_layers(diff_ids: Sequence[str], top: dict[str, Any]) -> list[tuple[str, bytes]]:
    """(id, json) of each layer for the old layout; ``top`` is merged into the last one."""
    out: list[tuple[str, bytes]] = []
    parent = ""
    for index, chain_id in enumerate(chain_ids(diff_ids)):
        meta: dict[str, Any] = {"created": CREATED, "os": top["os"]}
        if parent:
            meta["parent"] = parent
        if index == len(diff_ids) - 1:
            meta.update(top)
        # As Docker's v1.CreateID: hash the metadata plus the layer's chain id, then record the
        # result as the id. The id therefore changes when anything below or in the layer does.
        layer_id = hashlib.sha256(canonical_json({**meta, "layer_id": chain_id})).hexdigest()
        out.append((layer_id, canonical_json({**meta, "id": layer_id})))
        parent = layer_id
    return out


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, EPOCH
    return info, data


def _dir(name: str) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, EPOCH
    return info, b""


def write_docker_save(
    path: str,
    repository: str,
    tag: str,
    layers: Sequence[SavedLayer],
    config: RuntimeConfig,
    architecture: str,
    aliases: Sequence[str] = (),
) -> SavedImage:
    """Write the image as ``path`` (atomically: a temporary file renamed over it).

    ``aliases`` are further repository names for the ``repositories`` file only (``library/redis``
    for ``redis``): Mesos looks the user's reference up there verbatim, while ``RepoTags`` keeps
    the one normalised name ``docker load`` would give it anyway.
    """
    if not layers:
        raise ValueError("an image needs at least one layer")
    diff_ids = [digest(layer.tar) for layer in layers]
    image_config = {
        "architecture": architecture,
        "config": config.to_docker(),
        "created": CREATED,
        "history": [{"created": CREATED, "created_by": layer.created_by} for layer in layers],
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    config_bytes = canonical_json(image_config)
    config_hex = hashlib.sha256(config_bytes).hexdigest()
    top = {"architecture": architecture, "config": config.to_docker(), "os": "linux"}
    v1 = _v1_layers(diff_ids, top)
    layer_ids = [layer_id for layer_id, _ in v1]

    members = [_file(f"{config_hex}.json", config_bytes)]
    for (layer_id, meta), layer in zip(v1, layers, strict=True):
        members += [_dir(layer_id), _file(f"{layer_id}/VERSION", b"1.0"),
                    _file(f"{layer_id}/json", meta), _file(f"{layer_id}/layer.tar", layer.tar)]
    manifest = [{"Config": f"{config_hex}.json", "RepoTags": [f"{repository}:{tag}"],
                 "Layers": [f"{layer_id}/layer.tar" for layer_id in layer_ids]}]
    members.append(_file("manifest.json", canonical_json(manifest)))
    repositories = {name: {tag: layer_ids[-1]} for name in (repository, *aliases)}
    members.append(_file("repositories", canonical_json(repositories)))
    members.sort(key=lambda member: member[0].name)

    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as out:
            with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for info, data in members:
                    tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return SavedImage(path=path, image_id=f"sha256:{config_hex}", diff_ids=tuple(diff_ids),
                      layer_ids=tuple(layer_ids), size=os.path.getsize(path))
