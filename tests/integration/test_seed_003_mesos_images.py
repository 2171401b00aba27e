"""Seed 003: the Mesos containerizer runs Docker images with no Docker engine involved.

The agent starts with the post's flags (``--containerizers=mesos --image_providers=appc,docker
--isolation=filesystem/linux,docker/runtime``, then the second agent's ``--executor_...``
flags and ports) plus ``--docker_registry`` pointing at the offline images ``mesos-images``
builds; ``mesos-execute --docker_image=library/redis --shell=false`` runs the image's own Cmd
from its own root filesystem, a client on the host gets PONG, and a kill leaves no process,
no mount and no rootfs behind. Real mounts, namespaces and cgroups: root is needed, and CI
fails rather than skips without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import psutil
import pytest

from agent_runtime.proto import mesos_pb2
from tests.harness.cluster import VENV_BIN, Cluster, restart_agent, sandbox_file
from tests.harness.execute import execute, mounts_under, states
from tests.harness.framework import command_task, framework_info, subscribed, terminal
from tests.harness.wait import until, wait_for

pytestmark = [pytest.mark.cgroups, pytest.mark.slow]
SEED_FLAGS = ["--containerizers=mesos", "--image_providers=appc,docker",
              "--executor_environment_variables={}", "--executor_registration_timeout=60mins",
              "--resources=cpus:2;mem:2048;disk:4096;ports:[40001-44000]"]


@pytest.fixture(scope="module")
def images(image_task_images: str) -> str:
    return image_task_images


def _cluster(tmp_path: Any, images: str, isolation: str, *extra: str) -> Iterator[Cluster]:
    flags = [*SEED_FLAGS, f"--isolation={isolation}", f"--docker_registry={images}",
             f"--docker_store_dir={tmp_path}/store", *extra]
    cluster = Cluster(str(tmp_path), agent_flags=flags)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
        # A stopped agent leaves its containers for the next one to recover; a test that
        # failed half way may leave a rootfs mounted, which would outlive the test's files.
        for mount in reversed(mounts_under(str(tmp_path))):
            subprocess.run(["umount", "-l", mount], check=False)


@pytest.fixture
def cluster(tmp_path: Any, images: str) -> Iterator[Cluster]:
    yield from _cluster(tmp_path, images, "filesystem/linux,docker/runtime")


def _ping(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64)


def _processes(name: str) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["name"]) if p.info["name"] == name]


def test_a_busybox_task_sees_the_image_root_and_its_sandbox(cluster: Cluster) -> None:
    command = ("cat /etc/os-release > $MESOS_SANDBOX/os-release; ls / > $MESOS_SANDBOX/root; "
               "echo $MESOS_SANDBOX; pwd; id -u")
    done = execute(cluster, "--name=look", "--docker_image=busybox", f"--command={command}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert states(done.stdout, "look") == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
    sandbox_out = sandbox_file(cluster, "look", "stdout").split()
    assert sandbox_out == ["/mnt/mesos/sandbox", "/mnt/mesos/sandbox", "0"]
    root = sandbox_file(cluster, "look", "root").split()
    assert "work" not in root and "bin" in root and "mnt" in root  # not the host's /
    assert "ID=debian" in sandbox_file(cluster, "look", "os-release")
    # The rootfs goes with the container, just after the terminal update.
    wait_for(lambda: not mounts_under(cluster.work_dir), what="the rootfs to be unmounted")


# Long enough for a loaded host to unpack and start redis, and longer than the agent's 10 s
# --http_header_timeout: the executor, quiet that long, must still kill its task and say so.
KILL_AFTER = 20


def test_seed_003_redis_from_its_image_answers_ping_and_a_kill_leaves_nothing(
        cluster: Cluster, redis_port: int) -> None:
    with contextlib.suppress(OSError):
        _ping(redis_port)
        pytest.fail(f"something already listens on {redis_port}; the seed's redis needs it")
    before = {p.pid for p in _processes("redis-server")}
    run = subprocess.Popen(
        [os.path.join(VENV_BIN, "mesos-execute"), f"--master={cluster.master}", "--name=test",
         "--docker_image=library/redis", "--shell=false", f"--kill_after={KILL_AFTER}secs"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # redis must answer before the kill: the layer is unpacked afresh on each run
        deadline = time.monotonic() + KILL_AFTER
        answer = b""
        while time.monotonic() < deadline and answer != b"+PONG\r\n":
            with contextlib.suppress(OSError):
                answer = _ping(redis_port)
            time.sleep(0.1)
        assert answer == b"+PONG\r\n", "redis from the image did not answer"
        [redis] = [p for p in _processes("redis-server") if p.pid not in before]
        # It runs in the image's root, in the image's WorkingDir.
        assert not os.path.exists(f"/proc/{redis.pid}/root/work")
        assert os.path.exists(f"/proc/{redis.pid}/root/etc/redis/redis.conf")
        assert redis.cwd().endswith("/data")  # its WorkingDir
        output, _ = run.communicate(timeout=KILL_AFTER + 60)
    finally:
        if run.poll() is None:
            run.kill()
    assert states(output, "test")[-1] == "TASK_KILLED", output
    # The kill is reported before the containerizer's cleanup ends: poll for each leftover.
    wait_for(lambda: not [p for p in _processes("redis-server") if p.pid not in before],
             what="the image's redis-server to be gone")
    wait_for(lambda: not mounts_under(cluster.work_dir), what="the rootfs to be unmounted")
    containers = os.path.join(cluster.work_dir, "agent0", "provisioner", "containers")
    wait_for(lambda: not os.path.isdir(containers) or not os.listdir(containers),
             what="the provisioner to drop the container's directory")


def test_an_image_the_registry_lacks_fails_its_task_and_names_the_image(cluster: Cluster) -> None:
    done = execute(cluster, "--name=missing", "--docker_image=no-such-image:1.0",
                    "--command=true")
    seen = states(done.stdout, "missing")
    assert seen and seen[-1] == "TASK_FAILED", done.stdout
    assert "no-such-image" in done.stdout
    # The agent is fine: the next task runs.
    done = execute(cluster, "--name=after", "--docker_image=busybox", "--command=true")
    assert states(done.stdout, "after")[-1] == "TASK_FINISHED", done.stdout


@pytest.fixture
def plain_cluster(tmp_path: Any) -> Iterator[Cluster]:
    cluster = Cluster(str(tmp_path), agent_flags=["--containerizers=mesos"])
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def test_an_agent_without_image_providers_fails_image_tasks_with_the_flag_named(
        plain_cluster: Cluster) -> None:
    done = execute(plain_cluster, "--name=img", "--docker_image=busybox", "--command=true")
    assert states(done.stdout, "img")[-1] == "TASK_FAILED", done.stdout
    assert "--image_providers=docker" in done.stdout


def _sleepers(marker: str) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", marker]]


def _nothing_left(work_dir: str, marker: str) -> bool:
    return not mounts_under(work_dir) and not _sleepers(marker)


async def test_a_restarted_agent_keeps_a_running_image_task_and_its_rootfs(
        tmp_path: Any, images: str) -> None:
    """The twin of the seed test: kill -9 the agent under a checkpointed image task; the new
    agent adopts it (its rootfs stays mounted), and a kill still leaves nothing behind. The
    test's own framework kills it once the new agent is back: a kill on a timer
    (mesos-execute's --kill_after) would race the restart on a loaded machine."""
    marker = str(30000 + os.getpid() % 10000)  # seconds to sleep: names the task's process
    for cluster in _cluster(tmp_path, images, "filesystem/linux,docker/runtime,namespaces/pid"):
        async with subscribed(cluster.master, framework_info("sleeper", checkpoint=True)) as fw:
            offer = (await fw.offers())[0]
            task = command_task(offer, f"exec sleep {marker}", "sleeper")
            task.container.type = mesos_pb2.ContainerInfo.MESOS
            task.container.mesos.image.type = mesos_pb2.Image.DOCKER
            task.container.mesos.image.docker.name = "busybox"
            await fw.client.accept([offer.id.value], [task], refuse_seconds=0)
            await fw.update("sleeper", mesos_pb2.TASK_STARTING)
            await fw.update("sleeper", mesos_pb2.TASK_RUNNING)
            await until(lambda: bool(_sleepers(marker)), 60, "the image task's sleep")
            mounts = mounts_under(cluster.work_dir)
            assert mounts  # the rootfs
            await asyncio.to_thread(restart_agent, cluster)
            assert mounts_under(cluster.work_dir) == mounts  # recovered, not removed
            await fw.client.kill("sleeper")
            assert (await terminal(fw, "sleeper")).state == mesos_pb2.TASK_KILLED
        await asyncio.to_thread(wait_for, partial(_nothing_left, cluster.work_dir, marker),
                                what="no process and no mount left after the kill")
