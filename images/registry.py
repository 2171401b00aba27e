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
sends those credentials. The calls block: the store runs them in threads.
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
from .reference import Reference
from .store import LayerSource, Manifest, Progress, unpack_layer

log = logging.getLogger(__name__)

DOCKER_HUB = "https://registry-1.docker.io"
_HUB_HOSTS = ("registry-1.docker.io", "index.docker.io", "docker.io")
_TIMEOUT = 60.0
_CHUNK = 1 << 20
SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"
SCHEMA2_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+prettyjws",
           "application/vnd.docker.distribution.manifest.v1+json")
_ACCEPT = ", ".join((SCHEMA2, OCI_MANIFEST, SCHEMA2_LIST, OCI_INDEX, *SCHEMA1))
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


def _credentials(docker_config: str | None, host: str) -> str | None:
    """The base64 ``user:password`` that ``docker login`` saved for ``host``, if any."""
    if docker_config is None:
        return None
    try:
        with open(docker_config) as handle:
            config = json.load(handle)
    except (OSError, ValueError) as exc:
        raise RegistryError(f"cannot read --docker_config {docker_config}: {exc}") from exc
    auths = config.get("auths") if isinstance(config, dict) else None
    for key, entry in (auths or {}).items():
        key_host = urllib.parse.urlsplit(key).netloc if "://" in key else key.split("/")[0]
        if key_host == host or (host in _HUB_HOSTS and key_host in _HUB_HOSTS):
            auth = entry.get("auth") if isinstance(entry, dict) else None
            return auth if isinstance(auth, str) else None
    return None


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
        hub = urllib.parse.urlsplit(base).hostname in _HUB_HOSTS
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
                return urllib.request.urlopen(request, timeout=_TIMEOUT)
            except urllib.error.HTTPError as exc:
                if exc.code == 401 and attempt == 0:
                    challenge = exc.headers.get("WWW-Authenticate", "")
                    exc.close()
                    self._tokens[f"{host} {name}"] = self._authorize(challenge, host, given)
                    continue
                exc.close()
                raise
            except (OSError, http.client.HTTPException) as exc:
                reason = getattr(exc, "reason", exc)
                raise RegistryError(f"image {given!r}: cannot reach the registry at {url}: "
                                    f"{reason}") from exc
        raise AssertionError("unreachable")

    def _authorize(self, challenge: str, host: str, given: str) -> str:
        scheme, _, params_text = challenge.partition(" ")
        params = dict(_CHALLENGE_PARAM.findall(params_text))
        credentials = _credentials(self.docker_config, host)
        if scheme.lower() == "basic":
            if credentials is None:
                raise RegistryError(f"image {given!r}: the registry {host} asks for a login "
                                    "and --docker_config has none for it")
            return f"Basic {credentials}"
        if scheme.lower() != "bearer" or "realm" not in params:
            raise RegistryError(f"image {given!r}: unsupported auth challenge from {host}: "
                                f"{challenge!r}")
        query = urllib.parse.urlencode({k: v for k, v in params.items() if k != "realm"})
        request = urllib.request.Request(f"{params['realm']}?{query}")
        if credentials is not None:
            request.add_header("Authorization", f"Basic {credentials}")
        try:
            with urllib.request.urlopen(request, timeout=_TIMEOUT) as response:
                answer = json.load(response)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise RegistryError(f"image {given!r}: cannot get a token from "
                                f"{params['realm']}: {exc}") from exc
        token = answer.get("token") or answer.get("access_token")
        if not isinstance(token, str):
            raise RegistryError(f"image {given!r}: {params['realm']} gave no token")
        return f"Bearer {token}"

    def _get(self, url: str, accept: str, given: str, name: str, what: str) -> tuple[bytes, str]:
        try:
            with self._open(url, accept, given, name) as response:
                return response.read(), response.headers.get("Content-Type", "")
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
        for entry in index.get("manifests") or []:
            platform = entry.get("platform") or {}
            if platform.get("os") == "linux" and platform.get("architecture") == "amd64":
                return str(entry["digest"])
        raise ImageNotFound(f"image {given!r}: {url} lists no linux/amd64 manifest")

    def _schema2(self, manifest: dict[str, Any], given: str, origin: str,
                 name: str) -> Manifest:
        try:
            config_digest = str(manifest["config"]["digest"])
            blobs = [(str(layer["digest"]), int(layer.get("size") or 0))
                     for layer in manifest["layers"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise RegistryError(f"image {given!r}: malformed manifest from {origin}: "
                                f"missing {exc}") from exc
        url = f"{origin}/blobs/{config_digest}"
        data, _ = self._get(url, "*/*", given, name, "config blob")
        self._check(data, config_digest, given, url)
        config = self._json(data, given, url)
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        if len(diff_ids) != len(blobs):
            raise RegistryError(f"image {given!r}: {len(blobs)} layers but {len(diff_ids)} "
                                f"diff_ids in config {config_digest}")
        layers = tuple(LayerSource(id=str(diff_id).partition(":")[2], locator=digest,
                                   diff_id=str(diff_id), size=size)
                       for (digest, size), diff_id in zip(blobs, diff_ids, strict=True))
        return Manifest(reference=given, origin=origin, layers=layers,
                        config=RuntimeConfig.from_docker(config.get("config")))

    @staticmethod
    def _schema1(manifest: dict[str, Any], given: str, origin: str, url: str) -> Manifest:
        try:
            blobs = [str(layer["blobSum"]) for layer in manifest["fsLayers"]]
            top = json.loads(manifest["history"][0]["v1Compatibility"])
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise RegistryError(f"image {given!r}: malformed schema1 manifest {url}") from exc
        # Schema1 lists layers top first and records no diff_ids: the blob digest names them.
        layers = tuple(LayerSource(id=digest.partition(":")[2], locator=digest, diff_id=None)
                       for digest in reversed(blobs))
        return Manifest(reference=given, origin=origin, layers=layers,
                        config=RuntimeConfig.from_docker(top.get("config")))

    def fetch(self, manifest: Manifest, layer: LayerSource, rootfs: str, scratch: str,
              progress: Progress) -> None:
        url = f"{manifest.origin}/blobs/{layer.locator}"
        name = manifest.origin.split("/v2/", 1)[1]
        blob = os.path.join(scratch, "blob")
        hasher = hashlib.sha256()
        try:
            with self._open(url, "*/*", manifest.reference, name) as response, \
                    open(blob, "wb") as out:
                while chunk := response.read(_CHUNK):
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
                         f"image {manifest.reference!r}: layer {layer.locator}")
