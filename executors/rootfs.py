"""Enter a container's root filesystem and exec its command there (``filesystem/linux``).

Run as ``python -S -c <stub> <repository root> '<launch info JSON>'`` by the command executor
for a task with an image, or by the launcher for a custom executor with one. The executor itself
stays on the host's filesystem (it is Python, the image need not be); only what this helper
execs sees the image::

    {"rootfs": "/var/lib/.../rootfses/<id>", "sandbox": "/host/sandbox",
     "mount_point": "/mnt/mesos/sandbox", "argv": ["redis-server", "..."],
     "environment": {"PATH": "..."}, "working_dir": "/data", "user": "redis"}

Steps: a mount namespace of its own (so the pivot moves nobody else's root), the rootfs bound
onto itself (pivot_root wants a mount point), pivot_root and the old root detached; then, with
every path resolving inside the image, a fresh /proc (it shows the container's pid namespace
when there is one) with the kernel's knobs read-only and its secrets masked, read-only /sys, a
minimal /dev on tmpfs (plus the devices ``devices`` names: a container's GPUs), the sandbox
bound at ``mount_point`` (owned by the task's user), the image's user and working directory,
and exec. The mounts live in this namespace only and vanish with its last process.
A step that fails prints one line naming it and exits 127: the task fails with that message in
its stderr.

With ``"hostname"`` it names the UTS namespace the launcher made for it (``namespaces/uts``)
first: a custom executor has no fork server to do that for it.

With ``"join": <pid>`` instead of a rootfs it runs a health check's or check's command in the
running container whose init is that pid (its namespaces and root), with the same user and
confinement as the task.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import sys

from . import linux
from .commandinfo import ROOTFS_LAUNCH, TASK_LAUNCH_INFO
from .security import confine

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# What Mesos's default devices whitelist lets a container use, made as nodes in its /dev.
DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
           ("urandom", 1, 9), ("tty", 5, 0))
LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
         ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx"))
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
READ_ONLY = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
MASKED = ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug",
          "/proc/latency_stats", "/proc/acpi", "/proc/scsi", "/sys/firmware")
QUIET = linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC
# What an init passes on to the task (SIGKILL needs no passing: it ends the whole namespace).
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2, signal.SIGWINCH, signal.SIGCONT)


def _directory(path: str) -> str:
    """Made after the pivot: it resolves inside the image, whatever links the image holds."""
    os.makedirs(path, exist_ok=True)
    return path


def _make_dev(devices: list[list[Any]]) -> None:
    dev = _directory("/dev")
    linux.mount("tmpfs", dev, "tmpfs", linux.MS_NOSUID | linux.MS_NOEXEC, "mode=755")
    for name, major, minor in [*DEVICES, *devices]:
        path = os.path.join(dev, name)
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(major, minor))
        os.chmod(path, 0o666)  # mknod's mode is masked by the umask
    for name, target in LINKS:
        os.symlink(target, os.path.join(dev, name))
    linux.mount("devpts", _directory("/dev/pts"), "devpts", linux.MS_NOSUID | linux.MS_NOEXEC,
                "newinstance,ptmxmode=0666,mode=0620")
    linux.mount("tmpfs", _directory("/dev/shm"), "tmpfs", QUIET, "mode=1777")


def _harden_proc() -> None:
    """What a container must not write or read of the kernel through /proc and /sys, as runc
    and Mesos keep it: read-only knobs, masked files, an empty firmware tree."""
    for path in READ_ONLY:
        if os.path.exists(path):
            linux.mount(path, path, None, linux.MS_BIND | linux.MS_REC)
            linux.mount(None, path, None,
                        linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY | linux.MS_REC)
    for path in MASKED:
        if os.path.isdir(path):
            linux.mount("tmpfs", path, "tmpfs", QUIET | linux.MS_RDONLY)
        elif os.path.exists(path):
            linux.mount("/dev/null", path, None, linux.MS_BIND)


def enter(launch: dict[str, Any]) -> None:
    rootfs = launch["rootfs"]
    linux.unshare(linux.CLONE_NEWNS)
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    linux.mount(rootfs, rootfs, None, linux.MS_BIND | linux.MS_REC)
    # The sandbox is bound before the pivot (after it the host's paths are gone) onto a fresh
    # directory at the top of the rootfs, which is ours: a deeper path could run through the
    # image's links to the host. It is moved to its place once paths resolve in the image.
    staging = None
    if launch.get("sandbox"):
        staging = f"/.mesos-sandbox-{os.getpid()}"
        os.mkdir(rootfs + staging, 0o700)
        linux.mount(launch["sandbox"], rootfs + staging, None, linux.MS_BIND | linux.MS_REC)
    os.chdir(rootfs)
    linux.pivot_root(".", ".")
    linux.umount2(".", linux.MNT_DETACH)
    os.chdir("/")
    # From here on every path resolves inside the image: a link in it cannot lead out.
    linux.mount("proc", _directory("/proc"), "proc", QUIET)
    linux.mount("sysfs", _directory("/sys"), "sysfs", QUIET | linux.MS_RDONLY)
    _make_dev(launch.get("devices", []))
    _harden_proc()
    if staging is not None:
        linux.mount(staging, _directory(launch["mount_point"]), None, linux.MS_MOVE)
        os.rmdir(staging)


# The namespaces a check joins (those the container has apart from the host), with setns flags.
JOINED = (("ipc", linux.CLONE_NEWIPC), ("uts", linux.CLONE_NEWUTS), ("net", 0x40000000),
          ("mnt", linux.CLONE_NEWNS), ("pid", linux.CLONE_NEWPID))


def join(pid: int) -> None:
    """Into the running container whose init is ``pid``: its namespaces and its root, as
    ``nsenter --all --root`` would (a check's command then sees what the task sees). The pid
    namespace applies to our children: the caller forks next."""
    root = os.open(f"/proc/{pid}/root", os.O_RDONLY | os.O_DIRECTORY)
    entered = []
    for name, flag in JOINED:
        theirs = f"/proc/{pid}/ns/{name}"
        if os.stat(theirs).st_ino != os.stat(f"/proc/self/ns/{name}").st_ino:
            entered.append((os.open(theirs, os.O_RDONLY), flag))
    for fd, flag in entered:
        linux.setns(fd, flag)
        os.close(fd)
    os.fchdir(root)
    os.chroot(".")
    os.close(root)


def _joined(child: int) -> int:
    """The process that joined waits for its child (in the container's pid namespace)."""
    _, raw = os.waitpid(child, 0)
    return 128 + os.WTERMSIG(raw) if os.WIFSIGNALED(raw) else os.WEXITSTATUS(raw)


def _lookup(user: str) -> tuple[int, int]:
    """``name``, ``uid``, ``name:group`` or ``uid:gid``, looked up in the image's files."""
    name, _, group = user.partition(":")

    def table(path: str) -> list[list[str]]:
        try:
            with open(path) as file:
                return [line.rstrip("\n").split(":") for line in file if ":" in line]
        except OSError:
            return []

    uid = gid = None
    for entry in table("/etc/passwd"):
        if len(entry) > 3 and (entry[0] == name or entry[2] == name):
            uid, gid = int(entry[2]), int(entry[3])
            break
    if uid is None:
        if not name.isdigit():
            raise OSError(f"user {name!r} is not in the image's /etc/passwd")
        uid, gid = int(name), 0
    if group:
        for entry in table("/etc/group"):
            if len(entry) > 2 and (entry[0] == group or entry[2] == group):
                return uid, int(entry[2])
        if not group.isdigit():
            raise OSError(f"group {group!r} is not in the image's /etc/group")
        return uid, int(group)
    assert gid is not None
    return uid, gid


def _which(program: str, path: str) -> str:
    """execvp's search, by hand: ``os.execvpe`` imports modules that the image, now our root,
    does not have."""
    if "/" in program:
        return program
    for directory in path.split(":"):
        candidate = os.path.join(directory or ".", program)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(f"{program!r} is not in PATH={path}")


def _init(child: int, status_fd: int | None) -> int:
    """Pid 1 of the task's pid namespace: pass the executor's signals on, reap every orphan,
    and end with the task, telling the executor how it ended (a pid 1 cannot die of its own
    signal, so the raw status goes through ``status_fd``)."""
    def forward(signum: int, frame: object) -> None:
        # The executor signals our whole process group; a task still in it has had this one.
        with contextlib.suppress(OSError):
            if os.getpgid(child) != os.getpgrp():
                os.kill(child, signum)

    for signum in FORWARDED:
        signal.signal(signum, forward)
    # Unreachable from the task: without CAP_SYS_PTRACE it can neither trace us nor open our
    # /proc files (exe, fd, root), and we hold nothing of the host's but our own binary.
    linux.set_dumpable(False)
    while True:
        pid, raw = os.wait()
        if pid != child:
            continue
        status = -os.WTERMSIG(raw) if os.WIFSIGNALED(raw) else os.WEXITSTATUS(raw)
        if status_fd is not None:
            with contextlib.suppress(OSError):
                os.write(status_fd, str(status).encode())
        return 128 - status if status < 0 else status


def main() -> int:
    environment = dict(os.environ)
    # The agent's launcher gives the launch on the command line, and then only that counts: a
    # custom executor's environment is partly its framework's (ExecutorInfo's variables), and
    # a variable of that name must not replace the agent's word. Our executors hand their
    # task's launch over in the environment, with no argument (argv: -c, the package folder).
    handed_over = environment.pop(ROOTFS_LAUNCH, "")
    launch = json.loads(sys.argv[2] if len(sys.argv) > 2 else handed_over)
    environment.pop(TASK_LAUNCH_INFO, None)
    environment.update(launch.get("environment", {}))
    if launch.get("sandbox"):
        environment["MESOS_SANDBOX"] = launch["mount_point"]
    argv = launch["argv"]
    security = dict(launch.get("security", {}))
    status_fd = launch.get("status_fd")
    step = "entering the root filesystem"
    try:
        if launch.get("hostname"):
            step = "setting the container's hostname"
            linux.set_hostname(launch["hostname"])
        if launch.get("join"):
            # A check of a running image task: into its container, then confined as it is.
            linux.set_dumpable(False)  # root with every capability until confine(): untouchable
            join(int(launch["join"]))
            child = os.fork()
            if child:
                return _joined(child)
            if launch.get("mount_point"):
                environment["MESOS_SANDBOX"] = launch["mount_point"]
        elif launch.get("rootfs"):
            enter(launch)
        # An image task is bounded by the set the agent gives (Docker's default unless asked
        # otherwise); as root it holds that set, as another user nothing unless asked.
        if (launch.get("rootfs") or launch.get("join")) and security.get("effective") is None \
                and not launch.get("user"):
            security["effective"] = security.get("bounding")
        workdir = launch.get("working_dir") or launch.get("mount_point") or "/"
        step = f"changing to the working directory {workdir}"
        os.makedirs(workdir, exist_ok=True)
        os.chdir(workdir)
        if launch.get("user"):
            step = f"switching to user {launch['user']!r}"
            uid, gid = _lookup(launch["user"])
            if launch.get("sandbox"):
                # The task's user owns its sandbox, as in Mesos.
                os.chown(launch["mount_point"], uid, gid)
            security.update(uid=uid, gid=gid, groups=[gid])
            if uid == 0 and (launch.get("rootfs") or launch.get("join")) \
                    and security.get("effective") is None:
                security["effective"] = security.get("bounding")
        if launch.get("init") and os.getpid() == 1:
            step = "forking the task"
            child = os.fork()
            if child:
                return _init(child, status_fd)
        if status_fd is not None:
            os.close(status_fd)
        step = "confining the task"
        confine(security)
        step = f"executing {argv[0]!r}"
        os.execve(_which(argv[0], environment.get("PATH", DEFAULT_PATH)), argv, environment)
    except OSError as exc:
        print(f"Failed {step} {launch.get('rootfs', '')}: {exc}", file=sys.stderr)
    return 127


if __name__ == "__main__":
    sys.exit(main())
