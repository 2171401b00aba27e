"""Integration: ``mesos-images build`` makes real busybox and redis images from Debian packages,
and what is inside them runs.

Needs apt with Debian's mirror (or debs already in the cache) and root for ``chroot``. Outside
CI a missing need skips; in CI (``CI=true``) it fails, as every other integration test does.
The build shares ``~/.cache/agent-runtime/images`` (``MESOS_IMAGES_CACHE_DIR`` overrides it), so
reruns skip downloads; a cold build fetches ~9 MB and takes seconds.

Imports go through the top-level ``images`` name: see ``tests/unit/images/__init__.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass

import pytest

from agent_runtime.images.archive import DockerArchive
from tests.harness.needs import require

pytestmark = pytest.mark.slow

CHROOT = shutil.which("chroot") or "/usr/sbin/chroot"


def mesos_images(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent_runtime.images.offline", *args],
                          capture_output=True, text=True, timeout=600, check=False)


@dataclass(frozen=True)
class Built:
    output: str
    stdout: str


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    require(all(shutil.which(tool) for tool in ("apt-get", "apt-cache", "dpkg-deb")),
            "Debian's apt-get, apt-cache and dpkg-deb")
    output = str(tmp_path_factory.mktemp("images"))
    done = mesos_images("build", f"--output={output}", "busybox", "redis")
    assert done.returncode == 0, done.stderr
    return Built(output, done.stdout)


@pytest.fixture(scope="module")
def rootfs(built: Built, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    require(os.geteuid() == 0 and os.path.exists(CHROOT), "root and chroot(8)")
    roots = {}
    for name in ("busybox", "redis"):
        root = str(tmp_path_factory.mktemp(f"{name}-rootfs"))
        with DockerArchive(os.path.join(built.output, f"{name}.tar")) as archive:
            image = archive.image(name)
            archive.verify(image)
            archive.extract_rootfs(image, root)
        roots[name] = root
    return roots


def sha256(path: str) -> str:
    with open(path, "rb") as archive:
        return hashlib.sha256(archive.read()).hexdigest()


def test_build_writes_both_archives_for_the_docker_registry_flag(built: Built) -> None:
    assert "busybox: " in built.stdout and "redis: " in built.stdout
    for name in ("busybox", "redis"):
        path = os.path.join(built.output, f"{name}.tar")
        assert os.path.samefile(os.path.join(built.output, "library", f"{name}.tar"), path)
        with DockerArchive(path) as archive:
            image = archive.image(f"library/{name}")
            archive.verify(image)
            assert image.layout == "manifest" and len(image.layers) == 2
            assert image.os == "linux" and image.architecture
    with DockerArchive(os.path.join(built.output, "redis.tar")) as archive:
        redis = archive.image()
    assert redis.config.cmd == ("redis-server", "/etc/redis/redis.conf")
    assert redis.config.exposed_ports == ("6379/tcp",) and redis.config.working_dir == "/data"
    with DockerArchive(os.path.join(built.output, "busybox.tar")) as archive:
        busybox = archive.image()
    assert busybox.config.cmd == ("sh",)
    # One base layer, shared by both images: a store keeps it once.
    assert busybox.layers[0].diff_id == redis.layers[0].diff_id


def test_the_old_layout_is_what_mesos_tar_puller_walks(built: Built) -> None:
    """``repositories`` -> top layer id -> ``<id>/json`` parents, each with its layer.tar."""
    with tarfile.open(os.path.join(built.output, "redis.tar")) as tar:
        def read(name: str) -> bytes:
            member = tar.extractfile(name)
            assert member is not None
            return member.read()

        repositories = json.loads(read("repositories"))
        layer_id, chain = repositories["library/redis"]["latest"], []
        assert repositories["redis"]["latest"] == layer_id
        while layer_id:
            meta = json.loads(read(f"{layer_id}/json"))
            assert meta["id"] == layer_id and read(f"{layer_id}/VERSION") == b"1.0"
            chain.append("sha256:" + hashlib.sha256(read(f"{layer_id}/layer.tar")).hexdigest())
            layer_id = meta.get("parent")
    with DockerArchive(os.path.join(built.output, "redis.tar")) as archive:
        assert chain[::-1] == [layer.diff_id for layer in archive.image().layers]


def test_second_build_is_cached_and_a_rebuild_is_byte_identical(
        built: Built, tmp_path_factory: pytest.TempPathFactory) -> None:
    start = time.monotonic()
    again = mesos_images("build", f"--output={built.output}", "redis", "busybox")
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("from cache") == 2 and time.monotonic() - start < 30
    fresh = str(tmp_path_factory.mktemp("rebuilt"))
    rebuilt = mesos_images("build", f"--output={fresh}", "--rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "from cache" not in rebuilt.stdout
    for name in ("busybox", "redis"):
        assert sha256(os.path.join(fresh, f"{name}.tar")) == \
            sha256(os.path.join(built.output, f"{name}.tar"))


def test_busybox_runs_in_its_root_filesystem(rootfs: dict[str, str]) -> None:
    root = rootfs["busybox"]
    hello = subprocess.run([CHROOT, root, "/bin/busybox", "echo", "hi"], capture_output=True,
                           text=True, timeout=30, check=True)
    assert hello.stdout == "hi\n"
    # Cmd ["sh"] resolves through PATH to the applet link, as the image's runtime would do it.
    shell = subprocess.run([CHROOT, root, "sh", "-c", "echo $((6 * 7)); cat /etc/os-release"],
                           env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                           timeout=30, check=True)
    assert shell.stdout.startswith("42\n") and "ID=debian" in shell.stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ping(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"PING\r\n")
        return conn.recv(64)


def test_redis_runs_from_its_root_filesystem_and_answers_ping(built: Built,
                                                              rootfs: dict[str, str]) -> None:
    root = rootfs["redis"]
    version = subprocess.run([CHROOT, root, "redis-server", "--version"], capture_output=True,
                             text=True, timeout=30, check=True)
    assert version.stdout.startswith("Redis server v=")
    with open(os.path.join(root, "etc", "os-release")) as os_release:  # a link in the image
        fields = dict(line.strip().split("=", 1) for line in os_release if "=" in line)
    assert fields["ID"] == "debian" and fields["VERSION_CODENAME"]

    with DockerArchive(os.path.join(built.output, "redis.tar")) as archive:
        cmd = archive.image().config.cmd
    port = free_port()
    # The image's own Cmd, with options after the config file to stay on loopback.
    command = [*cmd, "--port", str(port), "--bind", "127.0.0.1"]
    server = subprocess.Popen([CHROOT, root, *command], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                assert ping(port) == b"+PONG\r\n"
                break
            except OSError:
                assert server.poll() is None, server.stdout.read() if server.stdout else ""
                assert time.monotonic() < deadline, "redis did not start listening"
                time.sleep(0.05)
        cli = subprocess.run([CHROOT, root, "redis-cli", "-p", str(port), "ping"],
                             capture_output=True, text=True, timeout=30, check=True)
        assert cli.stdout.strip() == "PONG"
    finally:
        server.terminate()
        server.wait(timeout=15)
    assert server.returncode == 0  # SIGTERM: redis shuts down cleanly
