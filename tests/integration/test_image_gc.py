"""Safe layers against a real agent: a gzip bomb image fails its task at
``--image_max_layer_size``, naming the layer and the cap; ``PRUNE_IMAGES`` on ``POST /api/v1``
removes an unused image while a running task's image and layers stay. Real mounts (root), the
offline busybox and redis images ``mesos-images`` builds.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

from agent_runtime.images.docker_save import SavedLayer, write_docker_save
from agent_runtime.images.image_config import RuntimeConfig
from tests.harness.cluster import VENV_BIN, Cluster
from tests.harness.execute import execute, mounts_under, states
from tests.harness.tars import Item, make_tar, rewrite
from tests.harness.wait import wait_for

pytestmark = [pytest.mark.cgroups, pytest.mark.slow]
CAP = "64MB"  # above redis's largest layer (about 31 MB), far below the bomb
BOMB = 256 << 20  # bytes of zeros in the bomb's one file: about 256 KB gzipped
# The redis image has no shell: its server, run to print its version.
REDIS_VERSION = {
    "name": "redis", "task_id": {"value": "redis"},
    "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                  {"name": "mem", "type": "SCALAR", "scalar": {"value": 64}}],
    "command": {"shell": False, "value": "/usr/bin/redis-server",
                "arguments": ["redis-server", "--version"]},
    "container": {"type": "MESOS", "mesos": {"image": {"type": "DOCKER",
                                                        "docker": {"name": "redis"}}}}}


class _Zeros(io.RawIOBase):
    def readinto(self, buffer: Any) -> int:
        buffer[:] = bytes(len(buffer))
        return len(buffer)


def _save_bomb(images: str) -> None:
    """``bomb.tar``: a docker save archive whose layer is a gzip bomb (the config's diff_id is
    not its, but the cap stops it before the digest is checked)."""
    plain = os.path.join(images, "bomb.plain")
    write_docker_save(plain, "bomb", "latest", [SavedLayer(make_tar([Item("x")]), "bomb")],
                      RuntimeConfig(cmd=("true",)), "amd64")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as tar:
        info = tarfile.TarInfo("zeros")
        info.size = BOMB
        tar.addfile(info, _Zeros())
    with tarfile.open(plain) as tar:
        layer = next(m.name for m in tar.getmembers() if m.name.endswith("layer.tar"))
    rewrite(plain, os.path.join(images, "bomb.tar"), lambda name: True,
            {layer: buffer.getvalue()})
    os.unlink(plain)


@pytest.fixture(scope="module")
def images(image_task_images: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The offline images plus the bomb, in a directory of this module's own."""
    out = str(tmp_path_factory.mktemp("gc-images"))
    for name in ("busybox.tar", "redis.tar"):
        shutil.copyfile(os.path.join(image_task_images, name), os.path.join(out, name))
    _save_bomb(out)
    return out


@pytest.fixture
def cluster(tmp_path: Any, images: str) -> Iterator[Cluster]:
    flags = ["--containerizers=mesos", "--image_providers=docker",
             "--isolation=filesystem/linux,docker/runtime", f"--docker_registry={images}",
             f"--docker_store_dir={tmp_path}/store", f"--image_max_layer_size={CAP}",
             '--image_gc_config={"image_disk_headroom": 0.0, "excluded_images": []}']
    cluster = Cluster(str(tmp_path), agent_flags=flags)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
        for mount in reversed(mounts_under(str(tmp_path))):
            subprocess.run(["umount", "-l", mount], check=False)


def _call(cluster: Cluster, body: bytes) -> tuple[int, str]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{cluster.agent_ports[0]}/api/v1", data=body, method="POST",
        headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _store(tmp_path: Any) -> tuple[list[str], set[str]]:
    with open(tmp_path / "store" / "storedImages") as handle:
        images = sorted(json.load(handle)["images"])
    return images, set(os.listdir(tmp_path / "store" / "layers"))


def _sleepers(marker: str) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", marker]]


def test_a_gzip_bomb_fails_its_task_at_the_cap_and_prune_keeps_the_running_image(
        cluster: Cluster, tmp_path: Any) -> None:
    done = execute(cluster, "--name=bomb", "--docker_image=bomb", "--command=true")
    assert states(done.stdout, "bomb")[-1] == "TASK_FAILED", done.stdout
    assert "layer.tar unpacks to more than 64MB (--image_max_layer_size)" in done.stdout
    wait_for(lambda: os.listdir(tmp_path / "store" / "staging") == [],
             what="the partial layer to be removed from staging")

    done = execute(cluster, f"--task={json.dumps(REDIS_VERSION)}")
    assert states(done.stdout, "redis")[-1] == "TASK_FINISHED", done.stdout
    marker = str(31000 + os.getpid() % 10000)
    sleeper = subprocess.Popen(
        [os.path.join(VENV_BIN, "mesos-execute"), f"--master={cluster.master}",
         "--name=sleeper", "--docker_image=busybox", f"--command=exec sleep {marker}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: _sleepers(marker), timeout=60, what="the busybox task to start")
        images, layers = _store(tmp_path)
        assert images == ["busybox:latest", "redis:latest"] and len(layers) == 3

        status, text = _call(cluster, json.dumps({
            "type": "PRUNE_IMAGES",
            "prune_images": {"excluded_images": []}}).encode())
        assert (status, text) == (200, "")
        images, kept = _store(tmp_path)
        assert images == ["busybox:latest"] and len(kept) == 2 and kept < layers
        assert _sleepers(marker)  # still running from its rootfs

        assert _call(cluster, b'{"type": "GET_RESOURCE_PROVIDERS"}')[0] == 501  # not ours
        status, text = _call(cluster, b'{"type": "PRUNE_IMAGES", "prune_images": 1}')
        assert status == 400 and "prune_images" in text and "JSON object" in text
        # Ended here, not by a --kill_after timer that the steps above could outrun on a
        # loaded machine (and that every run would wait out).
        for process in _sleepers(marker):
            process.kill()
        output, _ = sleeper.communicate(timeout=60)
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
    assert states(output, "sleeper")[-1] == "TASK_FAILED", output
    # Its container gone, busybox is unused too: excluded, it stays; then it goes.
    wait_for(lambda: not os.listdir(tmp_path / "agent0" / "provisioner" / "containers"),
             what="the busybox container to be destroyed")
    excluded = {"type": "PRUNE_IMAGES", "prune_images": {"excluded_images": [
        {"type": "DOCKER", "docker": {"name": "busybox"}}]}}
    assert _call(cluster, json.dumps(excluded).encode()) == (200, "")
    assert _store(tmp_path) == (["busybox:latest"], kept)
    assert _call(cluster, b'{"type": "PRUNE_IMAGES"}') == (200, "")
    assert _store(tmp_path) == ([], set())
