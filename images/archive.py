"""Read a ``docker save`` archive, in the new layout, the old one, or both.

New layout (Docker >= 1.10): ``manifest.json`` lists, per image, its config file (whose
``rootfs.diff_ids`` are the sha256 of each uncompressed layer) and its layer tars, bottom first.
Old layout (what Mesos's tar puller reads): ``repositories`` maps repository -> tag -> top layer
id, and each ``<id>/json`` names its ``parent``; the top one carries the runtime config.
``manifest.json`` wins when both are present, as it does for ``docker load``.

::

    with DockerArchive("/var/lib/mesos/images/redis.tar") as archive:
        image = archive.image("redis")          # or archive.image() if it holds one image
        archive.verify(image)                   # layer digests against the config's diff_ids
        archive.extract_rootfs(image, rootfs)   # every layer, bottom first, whiteouts applied
        image.config.cmd                        # ('redis-server', '/etc/redis/redis.conf')
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import json
import posixpath
import tarfile
from collections.abc import Iterator
from typing import IO, Any, Literal

from agent_runtime.errors import BadRequest

from .errors import BadArchive
from .extract import extract_layer
from .image_config import RuntimeConfig
from .layer import clean_name
from .reference import Reference, parse_reference

_MAX_LAYERS = 1000  # a parent chain longer than this is a loop
_GZIP_MAGIC = b"\x1f\x8b"


@dataclasses.dataclass(frozen=True)
class ArchiveLayer:
    id: str  # the layer's directory in the archive (its v1 id in the old layout)
    member: str  # the tar member holding the layer, e.g. "<id>/layer.tar"
    diff_id: str | None  # "sha256:<hex>" of the uncompressed tar; None in the old layout


@dataclasses.dataclass(frozen=True)
class ArchiveImage:
    repo_tags: tuple[str, ...]  # "redis:latest", as written in the archive
    layers: tuple[ArchiveLayer, ...]  # bottom first
    config: RuntimeConfig
    architecture: str
    os: str
    image_id: str | None  # sha256 of the image config; None in the old layout
    layout: Literal["manifest", "repositories"]

    def matches(self, reference: Reference) -> bool:
        for repo_tag in self.repo_tags:
            with contextlib.suppress(BadRequest):
                tagged = parse_reference(repo_tag)
                if (tagged.name, tagged.tag) == (reference.name, reference.tag):
                    return True
        return False


class DockerArchive:
    """An open archive; a context manager. Raises :class:`BadArchive` for malformed input."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self._tar = tarfile.open(path, "r:*")  # noqa: SIM115 - closed by close()
        except tarfile.ReadError as exc:
            raise BadArchive(f"{path} is not a tar archive") from exc
        except (OSError, tarfile.TarError) as exc:
            raise BadArchive(f"cannot open image archive {path}: {exc}") from exc
        try:
            self._members = {clean_name(m.name): m for m in self._tar.getmembers()}
            self.images = self._read_images()
        except BaseException:
            self._tar.close()
            raise

    def __enter__(self) -> DockerArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._tar.close()

    # Reading the index ---------------------------------------------------------------------

    def _open_member(self, name: str) -> IO[bytes]:
        member = self._members.get(name)
        source = self._tar.extractfile(member) if member and member.isreg() else None
        if source is None:
            raise BadArchive(f"image archive {self.path} has no file {name!r}")
        return source

    def _json(self, name: str) -> Any:
        with self._open_member(name) as source:
            try:
                return json.load(source)
            except (ValueError, UnicodeDecodeError) as exc:
                raise BadArchive(f"{name} in {self.path} is not valid JSON: {exc}") from exc

    def _read_images(self) -> tuple[ArchiveImage, ...]:
        if "manifest.json" in self._members:
            return self._from_manifest()
        if "repositories" in self._members:
            return self._from_repositories()
        raise BadArchive(f"{self.path} is not a docker save archive: "
                         "it has neither manifest.json nor repositories")

    def _from_manifest(self) -> tuple[ArchiveImage, ...]:
        manifest = self._json("manifest.json")
        if not isinstance(manifest, list) or not manifest:
            raise BadArchive(f"manifest.json in {self.path} must be a non-empty list")
        images = []
        for entry in manifest:
            if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str) \
                    or not isinstance(entry.get("Layers"), list):
                raise BadArchive(f"manifest.json in {self.path}: bad entry {entry!r}")
            config = self._json(clean_name(entry["Config"]))
            if not isinstance(config, dict):
                raise BadArchive(f"{entry['Config']} in {self.path} must be an object")
            rootfs = config.get("rootfs") or {}
            if not isinstance(rootfs, dict):
                raise BadArchive(f"{entry['Config']} in {self.path}: field rootfs must be an "
                                 f"object, not {rootfs!r:.100}")
            diff_ids = rootfs.get("diff_ids") or []
            if not isinstance(diff_ids, list) or \
                    not all(isinstance(diff_id, str) for diff_id in diff_ids):
                raise BadArchive(f"{entry['Config']} in {self.path}: field rootfs.diff_ids must "
                                 f"be a list of strings, not {diff_ids!r:.100}")
            repo_tags = entry.get("RepoTags") or []
            if not isinstance(repo_tags, list) or \
                    not all(isinstance(repo_tag, str) for repo_tag in repo_tags):
                raise BadArchive(f"manifest.json in {self.path}: field RepoTags must be a list "
                                 f"of strings, not {repo_tags!r:.100}")
            if len(diff_ids) != len(entry["Layers"]):
                raise BadArchive(f"{self.path}: {len(entry['Layers'])} layers but "
                                 f"{len(diff_ids)} diff_ids in {entry['Config']}")
            layers = []
            for member, diff_id in zip(entry["Layers"], diff_ids, strict=True):
                name = clean_name(str(member))
                if name not in self._members:
                    raise BadArchive(f"image archive {self.path} has no layer {name!r}")
                layer_id = posixpath.dirname(name) if name.endswith("/layer.tar") \
                    else posixpath.basename(name).split(".")[0]
                layers.append(ArchiveLayer(id=layer_id, member=name, diff_id=str(diff_id)))
            # "<hex>.json", or "blobs/sha256/<hex>" in the OCI-style archives of Docker >= 25.
            config_hex = posixpath.basename(entry["Config"]).removesuffix(".json")
            images.append(ArchiveImage(
                repo_tags=tuple(repo_tags), layers=tuple(layers),
                config=RuntimeConfig.from_docker(config.get("config")),
                architecture=str(config.get("architecture", "")), os=str(config.get("os", "")),
                image_id=f"sha256:{config_hex}", layout="manifest"))
        return tuple(images)

    def _from_repositories(self) -> tuple[ArchiveImage, ...]:
        repositories = self._json("repositories")
        if not isinstance(repositories, dict):
            raise BadArchive(f"repositories in {self.path} must be an object")
        tags_by_top: dict[str, list[str]] = {}
        for repository, tags in sorted(repositories.items()):
            if not isinstance(tags, dict):
                raise BadArchive(f"repositories in {self.path}: bad tags for {repository!r}")
            for tag, top in sorted(tags.items()):
                tags_by_top.setdefault(str(top), []).append(f"{repository}:{tag}")
        images = []
        for top, repo_tags in tags_by_top.items():
            chain: list[ArchiveLayer] = []
            meta: dict[str, Any] = {}
            layer_id = top
            while layer_id:
                if len(chain) >= _MAX_LAYERS or any(layer.id == layer_id for layer in chain):
                    raise BadArchive(f"{self.path}: the parents of layer {top} form a loop")
                layer_meta = self._json(f"{clean_name(layer_id)}/json")
                if not isinstance(layer_meta, dict):
                    raise BadArchive(f"{layer_id}/json in {self.path} must be an object")
                meta = meta or layer_meta  # the top layer's metadata describes the image
                member = f"{clean_name(layer_id)}/layer.tar"
                if member not in self._members:
                    raise BadArchive(f"image archive {self.path} has no layer {member!r}")
                chain.append(ArchiveLayer(id=layer_id, member=member, diff_id=None))
                layer_id = str(layer_meta.get("parent") or "")
            images.append(ArchiveImage(
                repo_tags=tuple(repo_tags), layers=tuple(reversed(chain)),
                config=RuntimeConfig.from_docker(meta.get("config")),
                architecture=str(meta.get("architecture", "")), os=str(meta.get("os", "")),
                image_id=None, layout="repositories"))
        return tuple(images)

    # Using it ------------------------------------------------------------------------------

    def image(self, reference: str | None = None) -> ArchiveImage:
        """The image named ``reference`` (Docker Hub names normalised), or the only one."""
        if reference is None:
            if len(self.images) != 1:
                raise BadArchive(f"{self.path} holds {len(self.images)} images; name one")
            return self.images[0]
        wanted = parse_reference(reference)
        for image in self.images:
            if image.matches(wanted):
                return image
        held = ", ".join(tag for image in self.images for tag in image.repo_tags) or "none"
        raise BadArchive(f"{self.path} has no image {reference!r} (it holds: {held})")

    @contextlib.contextmanager
    def open_layer(self, layer: ArchiveLayer) -> Iterator[tarfile.TarFile]:
        """The layer as a tar, gzip-compressed or not."""
        with self._open_member(layer.member) as source:
            try:
                with tarfile.open(fileobj=source, mode="r:*") as tar:
                    yield tar
            except tarfile.TarError as exc:
                raise BadArchive(f"layer {layer.member} in {self.path}: {exc}") from exc

    def layer_digest(self, layer: ArchiveLayer) -> str:
        """sha256 of the uncompressed layer tar, which is what ``diff_id`` records."""
        hasher = hashlib.sha256()
        with self._open_member(layer.member) as raw:
            magic = raw.read(2)
            raw.seek(0)
            with (gzip.GzipFile(fileobj=raw) if magic == _GZIP_MAGIC else raw) as source:
                while chunk := source.read(1 << 20):
                    hasher.update(chunk)
        return "sha256:" + hasher.hexdigest()

    def verify(self, image: ArchiveImage) -> None:
        """Check each layer against its diff_id (the old layout records none to check)."""
        for layer in image.layers:
            if layer.diff_id is not None and self.layer_digest(layer) != layer.diff_id:
                raise BadArchive(f"layer {layer.member} in {self.path} does not match its "
                                 f"digest {layer.diff_id}")

    def extract_rootfs(self, image: ArchiveImage, dest: str) -> None:
        """Unpack every layer of ``image`` onto ``dest``, bottom first."""
        for layer in image.layers:
            with self.open_layer(layer) as tar:
                extract_layer(tar, dest)
