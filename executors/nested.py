"""Run a command inside a running task's container: a nested container session (Mesos's
``LAUNCH_NESTED_CONTAINER_SESSION``, what ``mesos task exec`` asks for).

Run as ``python -S -c <stub> <repository root> '<session JSON>'`` by the agent, as root, with
its stdio already the session's pipes (or a pty)::

    {"pid": 4242, "start": "123456", "cgroup_procs": ["/sys/fs/cgroup/.../cgroup.procs"],
     "argv": ["echo", "hi"], "environment": {"X": "1"}, "user": null, "seccomp": null,
     "tty": false}

``pid`` is the task's process and ``start`` its start time in clock ticks (field 22 of its
``stat``), read by the agent: ``/proc/<pid>`` is opened once and checked against it, and
every later read goes through that descriptor, so a pid recycled meanwhile is refused rather
than entered. Then, in nsenter's order: the container's cgroups, every namespace of the task
that is not ours (ipc, uts, net, pid, mnt), the task's root and working directory. The command
runs in a child (only a child enters a pid namespace) with the task's environment under the
request's, as the task's user with the task's bounding set, capabilities, no_new_privs and
seccomp filter (``security.py``), or as ``user`` looked up in the container's own
``/etc/passwd``. So it sees what the task sees and can do no more than a task could.
This process waits, passes signals on, and exits as the command did. A step that fails prints
one line naming it and exits 127.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import sys
import termios

from . import linux
from .rootfs import _lookup, _which
from .security import confine

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# The order nsenter joins them in; mnt last, so the others' files are still found on the host.
NAMESPACES = ("ipc", "uts", "net", "pid", "mnt")
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2, signal.SIGWINCH, signal.SIGCONT)
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _read(proc: int, name: str) -> bytes:
    fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def start_ticks(stat: bytes) -> str:
    """Field 22 of ``/proc/<pid>/stat`` (the command name, field 2, may hold spaces)."""
    return stat[stat.rindex(b")") + 2:].split()[19].decode()


def _caps(mask: str) -> list[int]:
    value = int(mask, 16)
    return [bit for bit in range(64) if value >> bit & 1]


def task_confinement(status: bytes) -> dict[str, Any]:
    """The task's user and capability sets as its ``/proc/<pid>/status`` shows them."""
    fields = {}
    for line in status.decode(errors="replace").splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.split()
    return {"uid": int(fields["Uid"][1]), "gid": int(fields["Gid"][1]),
            "groups": [int(g) for g in fields.get("Groups", [])],
            "bounding": _caps(fields["CapBnd"][0]), "effective": _caps(fields["CapEff"][0]),
            "no_new_privs": fields.get("NoNewPrivs", ["0"])[0] == "1",
            "seccomp_mode": int(fields.get("Seccomp", ["0"])[0])}


def _environment(proc: int, overlay: dict[str, str]) -> dict[str, str]:
    out = {}
    for entry in _read(proc, "environ").split(b"\0"):
        name, sep, value = entry.partition(b"=")
        if sep and name:
            out[name.decode(errors="replace")] = value.decode(errors="replace")
    out.update(overlay)
    return out


def _enter(proc: int, session: dict[str, Any]) -> int:
    """Everything up to the fork, in this process; returns the task's working directory."""
    for path in session.get("cgroup_procs", []):
        with open(path, "w") as procs:
            procs.write(str(os.getpid()))
    joined = []
    for name in NAMESPACES:
        ours = os.stat(f"/proc/self/ns/{name}")
        theirs = os.stat(f"ns/{name}", dir_fd=proc)
        if (ours.st_dev, ours.st_ino) != (theirs.st_dev, theirs.st_ino):
            joined.append(os.open(f"ns/{name}", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc))
    root = os.open("root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=proc)
    cwd = os.open("cwd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=proc)
    for fd in joined:
        linux.setns(fd)
        os.close(fd)
    os.fchdir(root)
    os.chroot(".")
    os.close(root)
    return cwd


def _security(session: dict[str, Any], task: dict[str, Any]) -> dict[str, Any]:
    spec = {key: task[key] for key in ("bounding", "no_new_privs")}
    if task["seccomp_mode"] == 2 and not session.get("seccomp"):
        raise OSError("the task runs under a seccomp filter this agent did not record")
    spec["seccomp"] = session.get("seccomp")
    if session.get("user"):
        uid, gid = _lookup(session["user"])  # in the container's /etc/passwd
        spec.update(uid=uid, gid=gid, groups=[gid])
        # Root in the container holds the task's bounding set, anyone else nothing.
        spec["effective"] = task["bounding"] if uid == 0 else []
    else:
        spec.update({key: task[key] for key in ("uid", "gid", "groups", "effective")})
    return spec


def _wait(child: int) -> int:
    def forward(signum: int, frame: object) -> None:
        with contextlib.suppress(OSError):
            os.kill(child, signum)

    for forwarded in FORWARDED:
        signal.signal(forwarded, forward)
    while True:
        pid, raw = os.waitpid(child, 0)
        if pid == child:
            break
    if os.WIFSIGNALED(raw):
        # Die of the same signal, so the agent reads the same wait status the command had.
        signum = os.WTERMSIG(raw)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    return os.WEXITSTATUS(raw)


def main() -> int:
    session = json.loads(sys.argv[-1])
    step = f"opening the task's process {session['pid']}"
    try:
        proc = os.open(f"/proc/{int(session['pid'])}", os.O_RDONLY | os.O_DIRECTORY)
        if start_ticks(_read(proc, "stat")) != session["start"]:
            raise OSError("it is no longer the task (the pid was reused)")
        step = "reading the task's state"
        task = task_confinement(_read(proc, "status"))
        environment = _environment(proc, session.get("environment", {}))
        step = "entering the task's container"
        cwd = _enter(proc, session)
        os.close(proc)
        # Unreachable from the container before the command confines itself: nothing in it
        # may ptrace us or open our /proc files while we still hold the host's privileges.
        linux.set_dumpable(False)
        step = "forking the command"
        child = os.fork()
        if child:
            os.close(cwd)
            return _wait(child)
        os.setsid()
        if session.get("tty"):
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        os.fchdir(cwd)
        os.close(cwd)
        step = "confining the command"
        spec = _security(session, task)
        argv = session["argv"]
        path = _which(argv[0], environment.get("PATH", DEFAULT_PATH))
        confine(spec)
        step = f"executing {argv[0]!r}"
        os.execve(path, argv, environment)
    except (OSError, KeyError, ValueError, IndexError) as exc:
        print(f"Failed {step}: {exc}", file=sys.stderr)
    return 127


if __name__ == "__main__":
    sys.exit(main())
