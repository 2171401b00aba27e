"""Images for the provisioner tests, and a real Docker registry on loopback to pull them from.

``offline_images`` builds ``busybox.tar`` and ``redis.tar`` with ``mesos-images build`` (cached in
``~/.cache/agent-runtime/images``, so a rebuild takes a second or two). ``registry_server`` runs
Debian's ``docker-registry`` (the CNCF distribution registry, v2 API) with its storage in a
temporary directory; ``push_archive`` uploads a ``docker save`` archive into it with the plain v2
calls (monolithic blob uploads, then the schema2 manifest), gzip-compressing the layers as
``docker push`` does. A missing need skips the test, or fails it in CI (``tests/harness/needs.py``).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tests.harness.cluster import free_port
from tests.harness.locks import exclusive
from tests.harness.needs import require

REGISTRY_BINARY = "/usr/bin/docker-registry"
SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
LAYER_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def offline_images(output: str) -> str:
    """Build (or take from the cache) busybox.tar and redis.tar into ``output``."""
    require(all(shutil.which(tool) for tool in ("apt-get", "apt-cache", "dpkg-deb")),
            "Debian's apt-get, apt-cache and dpkg-deb (to build the offline images)")
    with exclusive("offline-image-cache"):  # one builder at a time writes the shared cache
        done = subprocess.run([sys.executable, "-m", "agent_runtime.images.offline", "build",
                               f"--output={output}", "busybox", "redis"],
                              capture_output=True, text=True, timeout=600, check=False)
    require(done.returncode == 0, f"mesos-images build to work: {done.stderr.strip()}")
    return output


@dataclass(frozen=True)
class Registry:
    url: str  # http://127.0.0.1:<port>
    storage: str  # the registry's filesystem storage root

    def blob_path(self, digest: str) -> str:
        """Where the registry keeps a blob on disk (distribution's filesystem layout)."""
        hex_digest = digest.partition(":")[2]
        return os.path.join(self.storage, "docker", "registry", "v2", "blobs", "sha256",
                            hex_digest[:2], hex_digest, "data")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/v2/", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def registry_server(work_dir: str) -> Iterator[Registry]:
    require(os.path.exists(REGISTRY_BINARY),
            "Debian's docker-registry (apt-get install docker-registry)")
    port = free_port()
    storage = os.path.join(work_dir, "registry-storage")
    os.makedirs(storage, exist_ok=True)
    config = os.path.join(work_dir, "registry.yml")
    with open(config, "w") as handle:
        # No blob descriptor cache: tests tamper with blobs on disk behind the registry's back.
        handle.write(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
                     f"    rootdirectory: {storage}\nhttp:\n  addr: 127.0.0.1:{port}\n")
    log = open(os.path.join(work_dir, "registry.log"), "ab")  # noqa: SIM115
    process = subprocess.Popen([REGISTRY_BINARY, "serve", config], stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 30
        while not _answers(url):
            if process.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"docker-registry did not start; see {work_dir}/registry.log")
            time.sleep(0.1)
        yield Registry(url=url, storage=storage)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 9)
        process.wait()
        log.close()


def _request(method: str, url: str, data: bytes = b"",
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(url, data=data or None, method=method,
                                     headers=headers or {})
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status, dict(response.headers)


def _push_blob(registry: Registry, name: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    _, headers = _request("POST", f"{registry.url}/v2/{name}/blobs/uploads/")
    location = urllib.parse.urljoin(registry.url, headers["Location"])
    separator = "&" if "?" in location else "?"
    status, _ = _request("PUT", f"{location}{separator}digest={digest}", data,
                         {"Content-Type": "application/octet-stream"})
    assert status == 201, f"blob upload answered {status}"
    return digest


def push_archive(registry: Registry, archive: str, name: str, tag: str = "latest",
                 mtime: int = 0) -> dict[str, Any]:
    """Push the first image of a ``docker save`` archive as ``name:tag``; returns the manifest.

    The registry stores blobs by digest, once for all repositories: another gzip ``mtime``
    gives the layers blobs of their own (same content, same diff_ids, other digests)."""
    with tarfile.open(archive) as tar:
        def read(member: str) -> bytes:
            source = tar.extractfile(member)
            assert source is not None, member
            return source.read()

        entry = json.loads(read("manifest.json"))[0]
        config = read(entry["Config"])
        layers = []
        for member in entry["Layers"]:
            blob = gzip.compress(read(member), mtime=mtime)
            layers.append({"mediaType": LAYER_TYPE, "size": len(blob),
                           "digest": _push_blob(registry, name, blob)})
    manifest: dict[str, Any] = {
        "schemaVersion": 2, "mediaType": SCHEMA2,
        "config": {"mediaType": CONFIG_TYPE, "size": len(config),
                   "digest": _push_blob(registry, name, config)},
        "layers": layers}
    status, _ = _request("PUT", f"{registry.url}/v2/{name}/manifests/{tag}",
                         json.dumps(manifest).encode(), {"Content-Type": SCHEMA2})
    assert status == 201, f"manifest upload answered {status}"
    return manifest
