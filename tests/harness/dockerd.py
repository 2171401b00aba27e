"""The Docker engine tests use (``scripts/docker.sh`` starts it) and small offline images for it.

There is no registry to pull from, so images come as ``docker save`` tarballs in a directory the
agent reads through ``--docker_registry``: ``<dir>/busybox.tar`` and, when the offline image
builder (``mesos-images``, ``images/``) is installed, ``<dir>/redis.tar``. Without that builder,
busybox is built here from Debian's ``busybox-static`` package: its one static binary plus a link
per applet, imported and saved through the SDK. Archives are cached across runs in
``IMAGE_CACHE``, keyed by the package file.
"""

from __future__ import annotations

import contextlib
import glob
import io
import os
import shutil
import subprocess
import tarfile
import tempfile

import docker
import requests
from docker import errors as sdk_errors

from tests.harness.cluster import VENV_BIN
from tests.harness.locks import exclusive
from tests.harness.needs import missing

SOCKET = os.environ.get("DOCKER_SOCKET", "/var/run/docker.sock")
IMAGE_CACHE = os.environ.get("AGENT_RUNTIME_IMAGE_CACHE", "/var/tmp/agent-runtime-test-images")


def engine() -> docker.APIClient:
    """A client for the engine; in CI a missing engine fails the test, elsewhere skips it."""
    try:
        client = docker.APIClient(base_url=f"unix://{SOCKET}", version="auto", timeout=120)
        client.ping()
    except (sdk_errors.DockerException, requests.RequestException, OSError) as exc:
        missing(f"a Docker engine on {SOCKET} (bash scripts/docker.sh starts one): {exc}")
    return client


def image_dir(client: docker.APIClient) -> str:
    """A directory holding ``busybox.tar`` (and ``redis.tar`` when the builder makes it)."""
    os.makedirs(IMAGE_CACHE, exist_ok=True)
    builder = os.path.join(VENV_BIN, "mesos-images")
    if os.path.exists(builder):
        built = os.path.join(IMAGE_CACHE, "offline")
        with exclusive("offline-image-cache"), \
                contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run([builder, "build", "busybox", "redis", f"--output={built}"],
                           check=True, capture_output=True, timeout=600)
        if os.path.isfile(os.path.join(built, "busybox.tar")):
            return built
    deb = _busybox_deb()
    out = os.path.join(IMAGE_CACHE, os.path.basename(deb).removesuffix(".deb"))
    archive = os.path.join(out, "busybox.tar")
    if not os.path.isfile(archive):
        os.makedirs(out, exist_ok=True)
        _build_busybox(client, deb, archive)
    return out


def _busybox_deb() -> str:
    found = sorted(glob.glob(os.path.join(IMAGE_CACHE, "busybox-static_*.deb")))
    if found:
        return found[-1]
    command = ["apt-get", "download", "-q", "busybox-static"]
    if subprocess.run(command, cwd=IMAGE_CACHE, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
        subprocess.run(command, cwd=IMAGE_CACHE, check=True, capture_output=True)
    return sorted(glob.glob(os.path.join(IMAGE_CACHE, "busybox-static_*.deb")))[-1]


def _build_busybox(client: docker.APIClient, deb: str, archive: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["dpkg-deb", "-x", deb, tmp], check=True)
        binary = os.path.join(tmp, "bin", "busybox")
        applets = subprocess.run([binary, "--list"], check=True, capture_output=True,
                                 text=True).stdout.split()
        rootfs = io.BytesIO()
        with tarfile.open(fileobj=rootfs, mode="w") as tar:
            for directory in ("bin", "etc", "tmp", "root"):
                info = tarfile.TarInfo(directory)
                info.type, info.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
                tar.addfile(info)
            tar.add(binary, "bin/busybox")
            for applet in applets:
                if applet != "busybox":
                    link = tarfile.TarInfo(f"bin/{applet}")
                    link.type, link.linkname = tarfile.SYMTYPE, "busybox"
                    tar.addfile(link)
            passwd = b"root:x:0:0:root:/root:/bin/sh\n"
            info = tarfile.TarInfo("etc/passwd")
            info.size = len(passwd)
            tar.addfile(info, io.BytesIO(passwd))
        client.import_image_from_data(rootfs.getvalue(), repository="busybox", tag="latest",
                                      changes=["ENV PATH=/bin", 'CMD ["sh"]'])
    partial = archive + ".part"
    with open(partial, "wb") as handle:
        for chunk in client.get_image("busybox:latest"):
            handle.write(chunk)
    os.replace(partial, archive)


def remove_managed(client: docker.APIClient, prefix: str = "mesos-") -> None:
    for container in client.containers(all=True, filters={"name": f"^/{prefix}"}):
        with contextlib.suppress(sdk_errors.NotFound):
            client.remove_container(container["Id"], force=True)


def has_redis(directory: str) -> bool:
    return os.path.isfile(os.path.join(directory, "redis.tar")) and shutil.which(
        "redis-cli") is not None
