"""``executors/rootfs.py`` on a real busybox rootfs: what a task inside an image can and cannot
reach. Real mounts and namespaces (root needed; CI fails rather than skips without it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from agent_runtime.images.archive import DockerArchive

pytestmark = pytest.mark.cgroups  # root, mounts and namespaces, as the cgroups tests need
STUB = ("import sys; sys.path[0] = sys.argv[1]; from executors import rootfs; "
        "sys.exit(rootfs.main())")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def busybox(image_task_images: str) -> str:
    return os.path.join(image_task_images, "busybox.tar")


def _rootfs(archive: str, where: Path) -> str:
    root = str(where / "rootfs")
    os.makedirs(root)
    with DockerArchive(archive) as docker_archive:
        docker_archive.extract_rootfs(docker_archive.image(), root)
    return root


def _enter(rootfs: str, sandbox: Path, script: str, user: str = "",
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    launch = {"rootfs": rootfs, "sandbox": str(sandbox), "mount_point": "/mnt/mesos/sandbox",
              "argv": ["/bin/sh", "-c", script], "environment": env or {}, "user": user}
    return subprocess.run([sys.executable, "-S", "-c", STUB, ROOT, json.dumps(launch)],
                          capture_output=True, text=True, timeout=30, check=False)


def test_links_in_the_image_cannot_lead_mounts_or_directories_out(
        busybox: str, tmp_path: Path) -> None:
    rootfs = _rootfs(busybox, tmp_path)
    outside = f"/tmp/rootfs-escape-{uuid.uuid4().hex[:8]}"
    if os.path.isdir(os.path.join(rootfs, "mnt")):
        os.rmdir(os.path.join(rootfs, "mnt"))
    # An image's absolute link, to a directory it has (and the host has not).
    os.makedirs(rootfs + outside)
    os.symlink(outside, os.path.join(rootfs, "mnt"))
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    done = _enter(rootfs, sandbox, "echo hi > $MESOS_SANDBOX/out; cat /mnt/mesos/sandbox/out")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hi\n"
    assert (sandbox / "out").read_text() == "hi\n"
    assert not os.path.exists(outside)  # the link resolved inside the image, not on the host
    assert os.path.isdir(rootfs + outside + "/mesos/sandbox")
    with open("/proc/self/mountinfo") as mounts:
        assert rootfs not in mounts.read()  # and the mounts stayed in the task's namespace


def test_the_kernel_knobs_are_read_only_and_its_secrets_masked(
        busybox: str, tmp_path: Path) -> None:
    rootfs = _rootfs(busybox, tmp_path)
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    done = _enter(rootfs, sandbox, "echo 0 > /proc/sys/kernel/panic_on_oops && echo WROTE; "
                                   "echo h > /proc/sysrq-trigger && echo TRIGGERED; "
                                   "cat /proc/timer_list | wc -c; ls /sys/firmware | wc -l")
    assert "WROTE" not in done.stdout and "TRIGGERED" not in done.stdout, done.stdout
    assert "Read-only file system" in done.stderr
    assert done.stdout.split() == ["0", "0"]  # timer_list is /dev/null, firmware an empty tmpfs


def test_the_task_user_owns_its_sandbox(
        busybox: str, tmp_path: Path) -> None:
    rootfs = _rootfs(busybox, tmp_path)
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    done = _enter(rootfs, sandbox, "id -u; touch $MESOS_SANDBOX/mine", user="1000")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1000"]
    assert (sandbox / "mine").stat().st_uid == 1000
