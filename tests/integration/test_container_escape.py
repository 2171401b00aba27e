"""What a hostile task tries against its container, on a real agent, with real images, mounts,
namespaces, capabilities and seccomp (issue 11). Each of these reached the host before.

- a root task in an image read and wrote host files through ``/proc/1/root`` (its executor was
  pid 1 of its pid namespace and lived in the host's mount namespace);
- it remounted ``/proc/sys`` read-write and held every capability;
- ``--switch_user`` was ignored: a task of user ``nobody`` ran as root.

Root is needed (mounts, namespaces); CI fails rather than skips without it.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_runtime.containerizer.capabilities import DOCKER_DEFAULT
from tests.harness.cluster import Cluster, sandbox_file
from tests.harness.execute import execute

pytestmark = [pytest.mark.cgroups, pytest.mark.slow]
BASE = ["--containerizers=mesos", "--image_providers=docker",
        "--resources=cpus:2;mem:2048;disk:4096;ports:[40001-44000]"]
IMAGE_ISOLATION = "filesystem/linux,docker/runtime,namespaces/pid"
CONFINED = (f"{IMAGE_ISOLATION},linux/capabilities,linux/seccomp,linux/nnp,namespaces/ipc,"
            "namespaces/uts")


def _mask(capabilities: frozenset[int]) -> str:
    return f"{sum(1 << c for c in capabilities):016x}"


@pytest.fixture(scope="module")
def images(image_task_images: str) -> str:
    return image_task_images


def _cluster(tmp_path: Path, images: str, isolation: str) -> Iterator[Cluster]:
    flags = [*BASE, f"--isolation={isolation}", f"--docker_registry={images}",
             f"--docker_store_dir={tmp_path}/store"]
    cluster = Cluster(str(tmp_path), agent_flags=flags)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
        with open("/proc/self/mountinfo") as mountinfo:
            mounts = [line.split()[4] for line in mountinfo
                      if line.split()[4].startswith(str(tmp_path))]
        for mount in reversed(mounts):
            subprocess.run(["umount", "-l", mount], check=False)


@pytest.fixture
def plain(tmp_path: Path, images: str) -> Iterator[Cluster]:
    yield from _cluster(tmp_path, images, IMAGE_ISOLATION)


@pytest.fixture
def open_work_dir() -> Iterator[Path]:
    """A work_dir other users can reach, as a real agent's is (pytest's own is root's only):
    a task running as another user needs to get to its sandbox."""
    path = Path(tempfile.mkdtemp(prefix="switch-user-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def shared(open_work_dir: Path, images: str) -> Iterator[Cluster]:
    yield from _cluster(open_work_dir, images, IMAGE_ISOLATION)


@pytest.fixture
def confined(tmp_path: Path, images: str) -> Iterator[Cluster]:
    yield from _cluster(tmp_path, images, CONFINED)


def _run(cluster: Cluster, name: str, command: str, *args: str) -> str:
    """Run ``command`` as a task to its end; its stdout."""
    done = execute(cluster, f"--name={name}", f"--command={command}", *args)
    assert "TASK_FINISHED" in done.stdout, done.stdout + done.stderr + cluster.logs()
    return sandbox_file(cluster, name, "stdout")


@pytest.fixture
def host_secret() -> Iterator[tuple[str, str]]:
    """A file only the host has, and a path a task must not be able to create."""
    token = uuid.uuid4().hex[:12]
    secret = f"/tmp/escape-secret-{token}"
    written = f"/tmp/escape-written-{token}"
    Path(secret).write_text(f"host-secret-{token}\n")
    os.chmod(secret, 0o644)
    try:
        yield secret, written
    finally:
        for path in (secret, written):
            if os.path.lexists(path):
                os.unlink(path)


ATTACK = r"""
for p in /proc/[0-9]*; do
  cat $p/root{SECRET} $p/cwd{SECRET} 2>/dev/null
  echo pwned > $p/root{WRITTEN} 2>/dev/null && echo WROTE $p
  ls $p/root/ >/dev/null 2>&1 && echo ROOT-OPEN $p
  readlink $p/fd/2 >/dev/null 2>&1 && echo FD-OPEN $p
  readlink $p/exe >/dev/null 2>&1 && echo EXE-OPEN $p
  tr '\0' ' ' < $p/cmdline; echo
done
mount -o remount,rw /proc/sys 2>/dev/null && echo REMOUNTED
echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo SYSCTL-WRITTEN
grep -E '^(CapEff|CapBnd|Seccomp|NoNewPrivs):' /proc/self/status
id -u
"""


def _attack(secret: str, written: str) -> str:
    return ATTACK.replace("{SECRET}", secret).replace("{WRITTEN}", written)


def _said(output: str, words: str) -> bool:
    """Whether the task printed a line starting with ``words`` (the script's own text shows
    in /proc/<pid>/cmdline too, but never at the start of a line)."""
    return re.search(rf"^{re.escape(words)}\b", output, re.MULTILINE) is not None


def _status(output: str, field: str) -> str:
    return next(line.split()[1] for line in output.splitlines() if line.startswith(field + ":"))


@pytest.mark.parametrize("user", ["root", "65534"])
def test_an_image_task_cannot_reach_the_host_through_proc(
        plain: Cluster, host_secret: tuple[str, str], user: str) -> None:
    secret, written = host_secret
    out = _run(plain, f"attack-{user}", _attack(secret, written), "--docker_image=busybox",
               f"--user={user}")
    assert "host-secret" not in out
    assert not os.path.exists(written)
    assert not _said(out, "WROTE /proc/1")
    # Our own process is the only one whose root and fds it may open: the init (pid 1) that
    # holds it in its pid namespace is out of its reach, and nothing of the host is in sight.
    for door in ("ROOT-OPEN", "FD-OPEN", "EXE-OPEN"):
        assert not _said(out, f"{door} /proc/1"), out
    assert "import command" not in out and "mesos-agent" not in out
    assert not _said(out, "REMOUNTED") and not _said(out, "SYSCTL-WRITTEN")
    assert out.split()[-1] == ("0" if user == "root" else "65534")
    if user == "root":
        assert _status(out, "CapEff") == _mask(DOCKER_DEFAULT)
    else:
        assert _status(out, "CapEff") == "0" * 16
    assert _status(out, "CapBnd") == _mask(DOCKER_DEFAULT)


def test_confined_image_task_has_seccomp_nnp_own_ipc_and_hostname(
        confined: Cluster, host_secret: tuple[str, str]) -> None:
    secret, written = host_secret
    script = _attack(secret, written) + (
        "hostname; readlink /proc/self/ns/ipc; "
        "mount -t tmpfs none /mnt 2>/dev/null && echo MOUNTED; "
        "hostname stolen 2>/dev/null && echo RENAMED; exit 0")
    out = _run(confined, "confined", script, "--docker_image=busybox")
    assert "host-secret" not in out and not os.path.exists(written)
    assert _status(out, "Seccomp") == "2"
    assert _status(out, "NoNewPrivs") == "1"
    assert _status(out, "CapEff") == _mask(DOCKER_DEFAULT)
    assert not _said(out, "MOUNTED") and not _said(out, "RENAMED")
    assert not _said(out, "WROTE /proc/1") and not _said(out, "ROOT-OPEN /proc/1")
    assert os.readlink("/proc/self/ns/ipc") not in out
    lines = out.split()
    assert os.uname().nodename not in lines  # its own hostname: the container's id


def test_capabilities_asked_for_are_exactly_what_the_task_holds(confined: Cluster) -> None:
    out = _run(confined, "caps", "grep -E '^(CapEff|CapBnd):' /proc/self/status",
               "--docker_image=busybox", "--effective_capabilities=NET_RAW,CHOWN")
    assert _status(out, "CapEff") == _mask(frozenset({13, 0}))
    assert _status(out, "CapBnd") == _mask(frozenset({13, 0}))


def test_a_task_without_an_image_is_confined_too(confined: Cluster) -> None:
    out = _run(confined, "hostcaps", "grep -E '^(CapEff|Seccomp|NoNewPrivs):' "
               "/proc/self/status; mount -t tmpfs none /mnt 2>/dev/null && echo MOUNTED; exit 0",
               "--effective_capabilities=CHOWN")
    assert _status(out, "CapEff") == _mask(frozenset({0}))
    assert _status(out, "Seccomp") == "2" and _status(out, "NoNewPrivs") == "1"
    assert not _said(out, "MOUNTED")


def test_switch_user_runs_the_task_as_the_framework_user(shared: Cluster) -> None:
    nobody = pwd.getpwnam("nobody")
    out = _run(shared, "as-nobody", "id -u; id -g; touch $MESOS_SANDBOX/mine && echo WROTE",
               "--user=nobody")
    assert out.split() == [str(nobody.pw_uid), str(nobody.pw_gid), "WROTE"]
    # The sandbox belongs to the task's user, as in Mesos.
    assert os.stat(_sandbox_of(shared, "as-nobody")).st_uid == nobody.pw_uid


def test_an_unknown_user_fails_the_task_naming_it(plain: Cluster) -> None:
    done = execute(plain, "--name=ghost", "--command=true", "--user=no-such-user-xq")
    assert "TASK_FAILED" in done.stdout, done.stdout + done.stderr
    assert "no-such-user-xq" in done.stdout


def _sandbox_of(cluster: Cluster, task_id: str) -> str:
    from tests.harness.cluster import get_json

    state: dict[str, Any] = get_json(f"http://127.0.0.1:{cluster.agent_ports[0]}/state")
    for framework in state["frameworks"] + state["completed_frameworks"]:
        for executor in framework["executors"] + framework["completed_executors"]:
            if executor["id"] == task_id:
                return str(executor["directory"])
    raise AssertionError(f"no executor {task_id}")


def test_a_health_check_of_an_image_task_runs_inside_its_container_confined_as_it(
        confined: Cluster, host_secret: tuple[str, str]) -> None:
    """A framework's COMMAND health check is a command like its task's: it ran on the host (the
    executor's filesystem, the executor's privileges) and could read what the task cannot."""
    secret, _ = host_secret
    evidence = "$MESOS_SANDBOX/check.txt"
    check = (f"grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/self/status > {evidence}; "
             f"cat {secret} >> {evidence} 2>/dev/null; readlink /proc/self/ns/ipc >> {evidence}; "
             f"test -x /bin/busybox && ! test -e {secret}")
    task = {"name": "checked", "task_id": {"value": "checked"},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                          {"name": "mem", "type": "SCALAR", "scalar": {"value": 64}}],
            # Runs until the check has left its evidence (at most a minute), then long enough
            # for the healthy update to go out before the task's end.
            "command": {"value": "i=0; while [ ! -s $MESOS_SANDBOX/check.txt ] && "
                                 "[ $i -lt 300 ]; do sleep 0.2; i=$((i+1)); done; sleep 2"},
            "container": {"type": "MESOS", "mesos": {"image": {
                "type": "DOCKER", "docker": {"name": "busybox"}}}},
            "health_check": {"type": "COMMAND", "command": {"value": check},
                             "delay_seconds": 0, "interval_seconds": 0.5,
                             "timeout_seconds": 10, "grace_period_seconds": 30,
                             "consecutive_failures": 10}}
    done = execute(confined, f"--task={json.dumps(task)}")
    assert "healthy?: True" in done.stdout, done.stdout + done.stderr + confined.logs()
    assert "TASK_FINISHED" in done.stdout
    out = sandbox_file(confined, "checked", "check.txt")
    assert "host-secret" not in out
    assert _status(out, "CapEff") == _mask(DOCKER_DEFAULT)
    assert _status(out, "Seccomp") == "2" and _status(out, "NoNewPrivs") == "1"
    assert os.readlink("/proc/self/ns/ipc") not in out
