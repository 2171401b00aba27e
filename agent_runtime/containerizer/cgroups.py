"""The cgroup seam (STYLE rules 6 and 7): one backend, chosen once at agent start.

v1 (:class:`CgroupsV1`) mounts one hierarchy per controller under ``--cgroups_hierarchy``;
containers live at ``<hierarchy>/<controller>/<cgroups_root>/<container_id>``. A unified (v2)
hierarchy gets :class:`~.cgroups_v2.CgroupsV2` behind the same :class:`Cgroups`, which translates
the v1 control names the isolators use.

Why plain file I/O and not cgroupspy (the issue suggested it): cgroupspy builds its tree by
walking the whole hierarchy when constructed, which sits on the launch path we benchmark, ships
no type hints (``mypy --strict``), and of what it offers we need six file operations.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from typing import Protocol

from agent_runtime.errors import FlagError, LaunchError


class Cgroups(Protocol):
    def path(self, controller: str, cgroup: str) -> str: ...
    def create(self, controller: str, cgroup: str) -> str: ...
    def write(self, controller: str, cgroup: str, control: str, value: str) -> None: ...
    def read(self, controller: str, cgroup: str, control: str) -> str: ...
    def children(self, controller: str, cgroup: str) -> list[str]: ...
    def procs(self, controller: str, cgroup: str) -> list[int]: ...
    def kill_all(self, controller: str, cgroup: str, timeout: float = 5.0) -> None: ...
    def remove(self, controller: str, cgroup: str) -> None: ...


class CgroupsV1:
    def __init__(self, hierarchy: str) -> None:
        self.hierarchy = hierarchy

    def path(self, controller: str, cgroup: str) -> str:
        return os.path.join(self.hierarchy, controller, cgroup)

    def create(self, controller: str, cgroup: str) -> str:
        path = self.path(controller, cgroup)
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise LaunchError(f"Failed to create cgroup {path}: {exc}") from exc
        return path

    def write(self, controller: str, cgroup: str, control: str, value: str) -> None:
        path = os.path.join(self.path(controller, cgroup), control)
        try:
            with open(path, "w") as file:
                file.write(value)
        except OSError as exc:
            raise LaunchError(f"Failed to write {value!r} to {path}: {exc}") from exc

    def read(self, controller: str, cgroup: str, control: str) -> str:
        with open(os.path.join(self.path(controller, cgroup), control)) as file:
            return file.read()

    def children(self, controller: str, cgroup: str) -> list[str]:
        try:
            return sorted(entry.name for entry in os.scandir(self.path(controller, cgroup))
                          if entry.is_dir(follow_symlinks=False))
        except FileNotFoundError:
            return []

    def procs(self, controller: str, cgroup: str) -> list[int]:
        try:
            return [int(line) for line in self.read(controller, cgroup, "cgroup.procs").split()]
        except FileNotFoundError:
            return []

    def kill_all(self, controller: str, cgroup: str, timeout: float = 5.0) -> None:
        """SIGKILL every process in the cgroup until it is empty: a process forking meanwhile
        lands in the same cgroup and is found on the next pass. (No freezer: fine for forks at
        human speed, a fork bomb needs the freezer, an open item.)"""
        deadline = time.monotonic() + timeout
        while pids := self.procs(controller, cgroup):
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                raise LaunchError(f"Processes {pids} survive SIGKILL in {cgroup}")
            time.sleep(0.005)

    def remove(self, controller: str, cgroup: str) -> None:
        """rmdir, idempotent; a cgroup whose last process is still exiting is busy a moment."""
        path = self.path(controller, cgroup)
        for _ in range(200):
            try:
                os.rmdir(path)
                return
            except FileNotFoundError:
                return
            except OSError as exc:
                if exc.errno != errno.EBUSY:
                    raise LaunchError(f"Failed to remove cgroup {path}: {exc}") from exc
                time.sleep(0.01)
        raise LaunchError(f"cgroup {path} stays busy")


def flat_keyed(text: str) -> dict[str, int]:
    """A flat keyed cgroup file (cpuacct.stat, cpu.stat, memory.stat, memory.events): one
    ``key value`` a line."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def require_controller(cgroups: Cgroups, controller: str, root: str) -> None:
    """Fail at start-up, with the flag named, when a controller is not mounted or not ours."""
    base = cgroups.path(controller, "")
    if not os.path.isdir(base):
        raise FlagError(f"cgroup controller {controller!r} is not mounted at {base}")
    try:
        cgroups.create(controller, root)
    except LaunchError as exc:
        raise FlagError(f"--cgroups_root={root}: {exc}") from exc
