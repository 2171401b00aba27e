"""Enter a container's root filesystem and exec its command there (``filesystem/linux``).

Run as ``python -S -c <stub> <repository root> '<launch info JSON>'`` by the command executor
for a task with an image, or by the launcher for a custom executor with one. The executor itself
stays on the host's filesystem (it is Python, the image need not be); only what this helper
execs sees the image::

    {"rootfs": "/var/lib/.../rootfses/<id>", "sandbox": "/host/sandbox",
     "mount_point": "/mnt/mesos/sandbox", "argv": ["redis-server", "..."],
     "environment": {"PATH": "..."}, "working_dir": "/data", "user": "redis"}

Steps: a mount namespace of its own (so the pivot moves nobody else's root), the rootfs bound
onto itself (pivot_root wants a mount point), a fresh /proc (it shows the container's pid
namespace when there is one), read-only /sys, a minimal /dev on tmpfs, the sandbox bound at
``mount_point``, pivot_root, the old root detached, then the image's user and working
directory, and exec. The mounts live in this namespace only and vanish with its last process.
A step that fails prints one line naming it and exits 127: the task fails with that message in
its stderr.
"""

from __future__ import annotations

import json
import os
import stat
import sys

from executors import linux

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# What Mesos's default devices whitelist lets a container use, made as nodes in its /dev.
DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
           ("urandom", 1, 9), ("tty", 5, 0))
LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
         ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx"))
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
QUIET = linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC


def _inside(rootfs: str, path: str) -> str:
    target = os.path.join(rootfs, path.lstrip("/"))
    os.makedirs(target, exist_ok=True)
    return target


def _make_dev(rootfs: str) -> None:
    dev = _inside(rootfs, "/dev")
    linux.mount("tmpfs", dev, "tmpfs", linux.MS_NOSUID | linux.MS_NOEXEC, "mode=755")
    for name, major, minor in DEVICES:
        os.mknod(os.path.join(dev, name), stat.S_IFCHR | 0o666, os.makedev(major, minor))
        os.chmod(os.path.join(dev, name), 0o666)  # mknod's mode is masked by the umask
    for name, target in LINKS:
        os.symlink(target, os.path.join(dev, name))
    pts = _inside(dev, "/pts")
    linux.mount("devpts", pts, "devpts", linux.MS_NOSUID | linux.MS_NOEXEC,
                "newinstance,ptmxmode=0666,mode=0620")
    shm = _inside(dev, "/shm")
    linux.mount("tmpfs", shm, "tmpfs", QUIET, "mode=1777")


def enter(launch: dict[str, Any]) -> None:
    rootfs = launch["rootfs"]
    linux.unshare(linux.CLONE_NEWNS)
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    linux.mount(rootfs, rootfs, None, linux.MS_BIND | linux.MS_REC)
    linux.mount("proc", _inside(rootfs, "/proc"), "proc", QUIET)
    linux.mount("sysfs", _inside(rootfs, "/sys"), "sysfs", QUIET | linux.MS_RDONLY)
    _make_dev(rootfs)
    if launch.get("sandbox"):
        linux.mount(launch["sandbox"], _inside(rootfs, launch["mount_point"]), None,
                    linux.MS_BIND | linux.MS_REC)
    os.chdir(rootfs)
    linux.pivot_root(".", ".")
    linux.umount2(".", linux.MNT_DETACH)
    os.chdir("/")


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


def _switch_user(user: str) -> None:
    uid, gid = _lookup(user)
    os.setgroups([gid])
    os.setgid(gid)
    os.setuid(uid)


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


def main() -> int:
    launch = json.loads(sys.argv[-1])
    environment = dict(os.environ)
    environment.pop("MESOS_TASK_LAUNCH_INFO", None)
    environment.update(launch.get("environment", {}))
    if launch.get("sandbox"):
        environment["MESOS_SANDBOX"] = launch["mount_point"]
    argv = launch["argv"]
    step = "entering the root filesystem"
    try:
        enter(launch)
        workdir = launch.get("working_dir") or launch.get("mount_point") or "/"
        step = f"changing to the working directory {workdir}"
        os.makedirs(workdir, exist_ok=True)
        os.chdir(workdir)
        if launch.get("user"):
            step = f"switching to user {launch['user']!r}"
            _switch_user(launch["user"])
        step = f"executing {argv[0]!r}"
        os.execve(_which(argv[0], environment.get("PATH", DEFAULT_PATH)), argv, environment)
    except OSError as exc:
        print(f"Failed {step} {launch['rootfs']}: {exc}", file=sys.stderr)
    return 127


if __name__ == "__main__":
    sys.exit(main())
