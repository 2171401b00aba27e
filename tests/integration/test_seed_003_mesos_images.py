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

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

from tests.cluster import VENV_BIN, Cluster
from tests.integration.test_docker import sandbox_file
from tests.registry import offline_images

pytestmark = [pytest.mark.cgroups, pytest.mark.slow]
REDIS_PORT = 6379  # the image's own config: the seed's redis-cli talks to the default port
SEED_FLAGS = ["--containerizers=mesos", "--image_providers=appc,docker",
              "--executor_environment_variables={}", "--executor_registration_timeout=60mins",
              "--resources=cpus:2;mem:2048;disk:4096;ports:[40001-44000]"]


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> str:
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("seed 003 in CI needs root (mounts and namespaces)")
        pytest.skip("needs root")
    return offline_images(str(tmp_path_factory.mktemp("offline-images")))


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
        for mount in reversed(_mounts_under(str(tmp_path))):
            subprocess.run(["umount", "-l", mount], check=False)


@pytest.fixture
def cluster(tmp_path: Any, images: str) -> Iterator[Cluster]:
    yield from _cluster(tmp_path, images, "filesystem/linux,docker/runtime")


def _execute(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [os.path.join(VENV_BIN, "mesos-execute"), f"--master={cluster.master}", *args],
        capture_output=True, text=True, timeout=120, check=False)


def _states(output: str, task: str) -> list[str]:
    return [line.split()[3] for line in output.splitlines()
            if line.startswith("Received status update") and f"'{task}'" in line]


def _ping(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64)


def _mounts_under(path: str) -> list[str]:
    with open("/proc/self/mountinfo") as mountinfo:
        return [line.split()[4] for line in mountinfo if line.split()[4].startswith(path)]


def _processes(name: str) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["name"]) if p.info["name"] == name]


def test_a_busybox_task_sees_the_image_root_and_its_sandbox(cluster: Cluster) -> None:
    command = ("cat /etc/os-release > $MESOS_SANDBOX/os-release; ls / > $MESOS_SANDBOX/root; "
               "echo $MESOS_SANDBOX; pwd; id -u")
    done = _execute(cluster, "--name=look", "--docker_image=busybox", f"--command={command}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert _states(done.stdout, "look") == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
    sandbox_out = sandbox_file(cluster, "look", "stdout").split()
    assert sandbox_out == ["/mnt/mesos/sandbox", "/mnt/mesos/sandbox", "0"]
    root = sandbox_file(cluster, "look", "root").split()
    assert "work" not in root and "bin" in root and "mnt" in root  # not the host's /
    assert "ID=debian" in sandbox_file(cluster, "look", "os-release")
    assert not _mounts_under(cluster.work_dir)  # the rootfs went with the container


def test_seed_003_redis_from_its_image_answers_ping_and_a_kill_leaves_nothing(
        cluster: Cluster) -> None:
    with contextlib.suppress(OSError):
        _ping(REDIS_PORT)
        pytest.fail(f"something already listens on {REDIS_PORT}; the seed's redis needs it")
    before = {p.pid for p in _processes("redis-server")}
    execute = subprocess.Popen(
        [os.path.join(VENV_BIN, "mesos-execute"), f"--master={cluster.master}", "--name=test",
         "--docker_image=library/redis", "--shell=false", "--kill_after=6secs"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        answer = b""
        while time.monotonic() < deadline and answer != b"+PONG\r\n":
            with contextlib.suppress(OSError):
                answer = _ping(REDIS_PORT)
            time.sleep(0.1)
        assert answer == b"+PONG\r\n", "redis from the image did not answer"
        [redis] = [p for p in _processes("redis-server") if p.pid not in before]
        # It runs in the image's root, in the image's WorkingDir.
        assert not os.path.exists(f"/proc/{redis.pid}/root/work")
        assert os.path.exists(f"/proc/{redis.pid}/root/etc/redis/redis.conf")
        assert redis.cwd().endswith("/data")  # its WorkingDir
        output, _ = execute.communicate(timeout=60)
    finally:
        if execute.poll() is None:
            execute.kill()
    assert _states(output, "test")[-1] == "TASK_KILLED", output
    deadline = time.monotonic() + 10
    while [p for p in _processes("redis-server") if p.pid not in before] or \
            _mounts_under(cluster.work_dir):
        assert time.monotonic() < deadline, "a process or a mount outlived the kill"
        time.sleep(0.05)
    containers = os.path.join(cluster.work_dir, "agent0", "provisioner", "containers")
    assert not os.path.isdir(containers) or not os.listdir(containers)


def test_an_image_the_registry_lacks_fails_its_task_and_names_the_image(cluster: Cluster) -> None:
    done = _execute(cluster, "--name=missing", "--docker_image=no-such-image:1.0",
                    "--command=true")
    states = _states(done.stdout, "missing")
    assert states and states[-1] == "TASK_FAILED", done.stdout
    assert "no-such-image" in done.stdout
    # The agent is fine: the next task runs.
    done = _execute(cluster, "--name=after", "--docker_image=busybox", "--command=true")
    assert _states(done.stdout, "after")[-1] == "TASK_FINISHED", done.stdout


@pytest.fixture
def plain_cluster(tmp_path: Any) -> Iterator[Cluster]:
    cluster = Cluster(str(tmp_path), agent_flags=["--containerizers=mesos"])
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def test_an_agent_without_image_providers_fails_image_tasks_with_the_flag_named(
        plain_cluster: Cluster) -> None:
    done = _execute(plain_cluster, "--name=img", "--docker_image=busybox", "--command=true")
    assert _states(done.stdout, "img")[-1] == "TASK_FAILED", done.stdout
    assert "--image_providers=docker" in done.stdout


def _sleepers(marker: str) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", marker]]


def test_a_restarted_agent_keeps_a_running_image_task_and_its_rootfs(
        tmp_path: Any, images: str) -> None:
    """The twin of the seed test: kill -9 the agent under a checkpointed image task; the new
    agent adopts it (its rootfs stays mounted), and a kill still leaves nothing behind."""
    marker = str(30000 + os.getpid() % 10000)  # seconds to sleep: names the task's process
    for cluster in _cluster(tmp_path, images, "filesystem/linux,docker/runtime,namespaces/pid"):
        execute = subprocess.Popen(
            [os.path.join(VENV_BIN, "mesos-execute"), f"--master={cluster.master}",
             "--name=sleeper", "--docker_image=busybox", "--checkpoint",
             f"--command=exec sleep {marker}", "--kill_after=8secs"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 20
            while not _sleepers(marker):
                assert time.monotonic() < deadline, "the image task did not start"
                time.sleep(0.05)
            mounts = _mounts_under(cluster.work_dir)
            assert mounts  # the rootfs
            cluster.kill("agent0", signal.SIGKILL)
            cluster.start_agent(0)
            cluster.wait_agents(1)
            assert _mounts_under(cluster.work_dir) == mounts  # recovered, not removed
            output, _ = execute.communicate(timeout=60)
        finally:
            if execute.poll() is None:
                execute.kill()
        assert _states(output, "sleeper")[-1] == "TASK_KILLED", output
        deadline = time.monotonic() + 10
        while _mounts_under(cluster.work_dir) or _sleepers(marker):
            assert time.monotonic() < deadline, "a process or a mount outlived the kill"
            time.sleep(0.05)
