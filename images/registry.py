"""A Docker Registry HTTP API v2 puller (what Mesos's registry puller speaks), over urllib.

::

    GET /v2/<name>/manifests/<tag|digest>   schema2 or OCI manifest (a manifest list or OCI
                                            index is followed to its linux/amd64 entry),
                                            schema1 as a fallback
    GET /v2/<name>/blobs/<digest>           the config blob, then each layer blob

Every blob is hashed while it downloads and must match the digest the manifest names; a mismatch
is a :class:`DigestMismatch` naming the digest. The layers' ``diff_ids`` (from the config) are
checked again while they are unpacked. On Docker Hub a one-component name gets ``library/``.

Auth: a ``401`` with a ``Bearer`` challenge fetches a token from the realm it names (with the
``--docker_config`` credentials for that registry when there are any); a ``Basic`` challenge
sends those credentials. The realm must be an ``http`` or ``https`` URL, and ``https`` when the
registry is: a registry cannot send us (and the credentials) to ``file://``, ``ftp://`` or to
plain HTTP. Redirects, too, may only go to ``http`` and ``https``.

What the registry sends is not trusted: manifests, configs and token answers are read up to
:data:`MAX_DOCUMENT` bytes, every field used is checked for its type and a digest's for its
form, and anything malformed is a :class:`RegistryError` naming the image and the field. Layer
blobs are streamed to disk, not held in memory. The calls block: the store runs them in threads.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from .errors import DigestMismatch, ImageError, ImageNotFound, RegistryError
from .image_config import RuntimeConfig
from .limits import SizeBudget
from .pull import LayerSource, Manifest, Progress
from .reference import Reference
from .registry_http import CHUNK, HUB_HOSTS, OPENER, read_capped
from .registry_http import credentials as saved_credentials
from .store import BLOB_PREFIX
from .unpack import unpack_layer

log = logging.getLogger(__name__)

DOCKER_HUB = "https://registry-1.docker.io"
_TIMEOUT = 60.0
SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"
SCHEMA2_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+prettyjws",
           "application/vnd.docker.distribution.manifest.v1+json")
_ACCEPT = ", ".join((SCHEMA2, OCI_MANIFEST, SCHEMA2_LIST, OCI_INDEX, *SCHEMA1))
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
MAX_DOCUMENT = 4 << 20  # bytes of a manifest, an image config or a token answer


def _digest(value: Any, given: str, field: str, where: str) -> str:
    """A ``sha256:<hex>`` digest read from ``field`` of a registry document."""
    if not isinstance(value, str) or not _DIGEST.fullmatch(value):
        raise RegistryError(f"image {given!r}: field {field} in {where} is not a sha256 "
                            f"digest: {value!r:.100}")
    return value


class RegistryPuller:
    def __init__(self, url: str, docker_config: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.docker_config = docker_config
        self._tokens: dict[str, str] = {}  # "host name" -> the Authorization header value

    def _base(self, reference: Reference) -> str:
        """A registry named in the reference overrides --docker_registry (keeping its scheme
        when it is the same host)."""
        if not reference.registry or reference.registry == urllib.parse.urlsplit(self.url).netloc:
            return self.url
        return f"https://{reference.registry}"

    @staticmethod
    def _name(base: str, reference: Reference) -> str:
        hub = urllib.parse.urlsplit(base).hostname in HUB_HOSTS
        return f"library/{reference.repository}" if hub and "/" not in reference.repository \
            else reference.repository

    # HTTP ------------------------------------------------------------------------------------

    def _open(self, url: str, accept: str, given: str, name: str) -> Any:
        host = urllib.parse.urlsplit(url).netloc
        for attempt in range(2):
            request = urllib.request.Request(url, headers={"Accept": accept})
            token = self._tokens.get(f"{host} {name}")
            if token:
                # Not sent on to a redirect (blob storage may reject or leak it).
                request.add_unredirected_header("Authorization", token)
            try:
                return OPENER.open(request, timeout=_TIMEOUT)
            except urllib.error.HTTPError as exc:
                if exc.code == 401 and attempt == 0:
                    challenge = exc.headers.get("WWW-Authenticate", "")
                    exc.close()
                    scheme = urllib.parse.urlsplit(url).scheme.lower()
                    self._tokens[f"{host} {name}"] = self._authorize(challenge, host, given,
                                                                     scheme)
                    continue
                exc.close()
                raise
            except (OSError, http.client.HTTPException) as exc:
                reason = getattr(exc, "reason", exc)
                raise RegistryError(f"image {given!r}: cannot reach the registry at {url}: "
                                    f"{reason}") from exc
        raise AssertionError("unreachable")

    def _authorize(self, challenge: str, host: str, given: str, scheme_of_registry: str) -> str:
        scheme, _, params_text = challenge.partition(" ")
        params = dict(_CHALLENGE_PARAM.findall(params_text))
        credentials = saved_credentials(self.docker_config, host)
        if scheme.lower() == "basic":
            if credentials is None:
                raise RegistryError(f"image {given!r}: the registry {host} asks for a login "
                                    "and --docker_config has none for it")
            return f"Basic {credentials}"
        if scheme.lower() != "bearer" or "realm" not in params:
            raise RegistryError(f"image {given!r}: unsupported auth challenge from {host}: "
                                f"{challenge!r}")
        realm = params["realm"]
        realm_url = urllib.parse.urlsplit(realm)
        allowed = ("https",) if scheme_of_registry == "https" else ("http", "https")
        if realm_url.scheme.lower() not in allowed or not realm_url.netloc:
            raise RegistryError(f"image {given!r}: the registry {host} names the auth realm "
                                f"{realm!r:.200}, which is not an {' or '.join(allowed)} URL")
        query = urllib.parse.urlencode({k: v for k, v in params.items() if k != "realm"})
        request = urllib.request.Request(f"{realm}?{query}")
        if credentials is not None:
            request.add_header("Authorization", f"Basic {credentials}")
        try:
            with OPENER.open(request, timeout=_TIMEOUT) as response:
                answer = json.loads(read_capped(response, MAX_DOCUMENT,
                                                 f"the token answer from {realm}"))
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
            raise RegistryError(f"image {given!r}: cannot get a token from "
                                f"{realm}: {exc}") from exc
        if not isinstance(answer, dict):
            raise RegistryError(f"image {given!r}: the token answer from {realm} is not a "
                                "JSON object")
        token = answer.get("token") or answer.get("access_token")
        if not isinstance(token, str):
            raise RegistryError(f"image {given!r}: {params['realm']} gave no token")
        return f"Bearer {token}"

    def _get(self, url: str, accept: str, given: str, name: str, what: str) -> tuple[bytes, str]:
        try:
            with self._open(url, accept, given, name) as response:
                data = read_capped(response, MAX_DOCUMENT, f"image {given!r}: {what} {url}")
                return data, response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise ImageNotFound(f"image {given!r}: {what} not found at {url}") from exc
            raise RegistryError(f"image {given!r}: {url} answered {exc.code} {exc.reason}"
                                ) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise RegistryError(f"image {given!r}: reading {url}: {exc!r}") from exc

    @staticmethod
    def _check(data: bytes, digest: str, given: str, url: str) -> None:
        algorithm, _, expected = digest.partition(":")
        if algorithm != "sha256":
            raise ImageError(f"image {given!r}: unsupported digest {digest!r}")
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise DigestMismatch(f"image {given!r}: {url} does not match its digest {digest} "
                                 f"(it hashes to sha256:{actual})")

    # The puller ------------------------------------------------------------------------------

    def resolve(self, reference: Reference, given: str) -> Manifest:
        base = self._base(reference)
        name = self._name(base, reference)
        origin = f"{base}/v2/{name}"
        url = f"{origin}/manifests/{reference.digest or reference.tag}"
        data, media_type = self._get(url, _ACCEPT, given, name, "manifest")
        if reference.digest:
            self._check(data, reference.digest, given, url)
        manifest = self._json(data, given, url)
        media_type = str(manifest.get("mediaType") or media_type.split(";")[0])
        if media_type in (SCHEMA2_LIST, OCI_INDEX) or "manifests" in manifest:
            digest = self._platform_digest(manifest, given, url)
            url = f"{origin}/manifests/{digest}"
            data, media_type = self._get(url, _ACCEPT, given, name, "manifest")
            self._check(data, digest, given, url)
            manifest = self._json(data, given, url)
        if manifest.get("schemaVersion") == 1:
            return self._schema1(manifest, given, origin, url)
        return self._schema2(manifest, given, origin, name)

    @staticmethod
    def _json(data: bytes, given: str, url: str) -> dict[str, Any]:
        try:
            value = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RegistryError(f"image {given!r}: {url} is not JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise RegistryError(f"image {given!r}: {url} is not a JSON object")
        return value

    @staticmethod
    def _platform_digest(index: dict[str, Any], given: str, url: str) -> str:
        entries = index.get("manifests") or []
        if not isinstance(entries, list):
            raise RegistryError(f"image {given!r}: field manifests in {url} must be a list, "
                                f"not {entries!r:.100}")
        for position, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise RegistryError(f"image {given!r}: field manifests[{position}] in {url} "
                                    f"must be an object, not {entry!r:.100}")
            platform = entry.get("platform") or {}
            if not isinstance(platform, dict):
                raise RegistryError(f"image {given!r}: field manifests[{position}].platform in "
                                    f"{url} must be an object, not {platform!r:.100}")
            if platform.get("os") == "linux" and platform.get("architecture") == "amd64":
                return _digest(entry.get("digest"), given, f"manifests[{position}].digest", url)
        raise ImageNotFound(f"image {given!r}: {url} lists no linux/amd64 manifest")

    def _schema2(self, manifest: dict[str, Any], given: str, origin: str,
                 name: str) -> Manifest:
        where = f"the manifest from {origin}"
        config_ref = manifest.get("config")
        if not isinstance(config_ref, dict):
            raise RegistryError(f"image {given!r}: field config in {where} must be an object, "
                                f"not {config_ref!r:.100}")
        config_digest = _digest(config_ref.get("digest"), given, "config.digest", where)
        entries = manifest.get("layers")
        if not isinstance(entries, list):
            raise RegistryError(f"image {given!r}: field layers in {where} must be a list, "
                                f"not {entries!r:.100}")
        blobs: list[tuple[str, int]] = []
        for position, layer in enumerate(entries):
            if not isinstance(layer, dict):
                raise RegistryError(f"image {given!r}: field layers[{position}] in {where} must "
                                    f"be an object, not {layer!r:.100}")
            size = layer.get("size") or 0
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise RegistryError(f"image {given!r}: field layers[{position}].size in {where} "
                                    f"must be a size in bytes, not {size!r:.100}")
            blobs.append((_digest(layer.get("digest"), given, f"layers[{position}].digest",
                                  where), size))
        url = f"{origin}/blobs/{config_digest}"
        data, _ = self._get(url, "*/*", given, name, "config blob")
        self._check(data, config_digest, given, url)
        config = self._json(data, given, url)
        rootfs = config.get("rootfs") or {}
        if not isinstance(rootfs, dict):
            raise RegistryError(f"image {given!r}: field rootfs in config {config_digest} must "
                                f"be an object, not {rootfs!r:.100}")
        diff_ids = rootfs.get("diff_ids") or []
        if not isinstance(diff_ids, list):
            raise RegistryError(f"image {given!r}: field rootfs.diff_ids in config "
                                f"{config_digest} must be a list, not {diff_ids!r:.100}")
        if len(diff_ids) != len(blobs):
            raise RegistryError(f"image {given!r}: {len(blobs)} layers but {len(diff_ids)} "
                                f"diff_ids in config {config_digest}")
        layers: list[LayerSource] = []
        for position, ((digest, size), value) in enumerate(zip(blobs, diff_ids, strict=True)):
            diff_id = _digest(value, given, f"rootfs.diff_ids[{position}]",
                              f"config {config_digest}")
            layers.append(LayerSource(id=diff_id.partition(":")[2], locator=digest,
                                      diff_id=diff_id, size=size))
        return Manifest(reference=given, origin=origin, layers=tuple(layers),
                        config=self._runtime_config(config.get("config"), given,
                                                    f"config {config_digest}"))

    @staticmethod
    def _runtime_config(value: Any, given: str, where: str) -> RuntimeConfig:
        try:
            return RuntimeConfig.from_docker(value)
        except ImageError as exc:
            raise RegistryError(f"image {given!r}: {where}: {exc}") from exc

    @classmethod
    def _schema1(cls, manifest: dict[str, Any], given: str, origin: str, url: str) -> Manifest:
        where = f"schema1 manifest {url}"
        fs_layers = manifest.get("fsLayers")
        history = manifest.get("history")
        if not isinstance(fs_layers, list) or not fs_layers:
            raise RegistryError(f"image {given!r}: field fsLayers in {where} must be a "
                                f"non-empty list, not {fs_layers!r:.100}")
        if not isinstance(history, list) or not history or not isinstance(history[0], dict):
            raise RegistryError(f"image {given!r}: field history in {where} must be a "
                                f"non-empty list of objects, not {history!r:.100}")
        blobs = []
        for position, layer in enumerate(fs_layers):
            if not isinstance(layer, dict):
                raise RegistryError(f"image {given!r}: field fsLayers[{position}] in {where} "
                                    f"must be an object, not {layer!r:.100}")
            blobs.append(_digest(layer.get("blobSum"), given, f"fsLayers[{position}].blobSum",
                                 where))
        compatibility = history[0].get("v1Compatibility")
        if not isinstance(compatibility, str):
            raise RegistryError(f"image {given!r}: field history[0].v1Compatibility in {where} "
                                f"must be a string, not {compatibility!r:.100}")
        try:
            top = json.loads(compatibility)
        except ValueError as exc:
            raise RegistryError(f"image {given!r}: field history[0].v1Compatibility in {where} "
                                f"is not JSON: {exc}") from exc
        if not isinstance(top, dict):
            raise RegistryError(f"image {given!r}: field history[0].v1Compatibility in {where} "
                                f"must hold a JSON object, not {top!r:.100}")
        # Schema1 lists layers top first and records no diff_ids: the blob digest, checked
        # while downloading, names them, in a namespace of their own (see store.py).
        layers = tuple(LayerSource(id=BLOB_PREFIX + digest.partition(":")[2], locator=digest,
                                   diff_id=None)
                       for digest in reversed(blobs))
        return Manifest(reference=given, origin=origin, layers=layers,
                        config=cls._runtime_config(top.get("config"), given, where))

    def fetch(self, manifest: Manifest, layer: LayerSource, rootfs: str, scratch: str,
              progress: Progress, budget: SizeBudget) -> None:
        url = f"{manifest.origin}/blobs/{layer.locator}"
        name = manifest.origin.split("/v2/", 1)[1]
        blob = os.path.join(scratch, "blob")
        hasher = hashlib.sha256()
        try:
            with self._open(url, "*/*", manifest.reference, name) as response, \
                    open(blob, "wb") as out:
                while chunk := response.read(CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
                    progress.add(len(chunk))
        except urllib.error.HTTPError as exc:
            raise RegistryError(f"image {manifest.reference!r}: layer {layer.locator}: {url} "
                                f"answered {exc.code} {exc.reason}") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise RegistryError(f"image {manifest.reference!r}: downloading {url}: {exc!r}"
                                ) from exc
        actual = "sha256:" + hasher.hexdigest()
        if actual != layer.locator:
            raise DigestMismatch(f"image {manifest.reference!r}: layer blob {layer.locator} "
                                 f"from {url} does not match its digest (it hashes to {actual})")
        with open(blob, "rb") as source:
            unpack_layer(source, rootfs, layer.diff_id,
                         f"image {manifest.reference!r}: layer {layer.locator}",
                         charge=budget.charge)
