"""cgroup v2: the unified hierarchy behind the same :class:`~.cgroups.Cgroups` seam as v1.

One tree serves every controller, so ``path(controller, cgroup)`` ignores the controller and the
isolators' separate cgroups per controller become one directory. A controller is enabled for a
cgroup by writing ``+name`` to its parent's ``cgroup.subtree_control``, from the top down.

The isolators speak v1 (``cpu.shares``, ``memory.limit_in_bytes``, ...); this module translates
those names and values here, at the seam, so no isolator branches on the version::

    v1 write                             v2 write
    cpu.shares S                         cpu.weight 1 + ((S - 2) * 9999) // 262142
    cpu.cfs_quota_us Q, cpu.cfs_period_us P
                                         cpu.max "Q P" ("max" for Q = -1), read-modify-write
    memory.limit_in_bytes L              memory.max
    memory.soft_limit_in_bytes L         memory.low
    pids.max, cgroup.procs, ...          unchanged

Reads translate back: ``memory.usage_in_bytes`` is ``memory.current``, ``cpuacct.stat`` and
``cpu.stat`` are rebuilt from v2's ``cpu.stat`` (microseconds) in v1's units, ``memory.stat``
gains v1's key names. The OOM notification differs in kind (``memory.events``, not an eventfd on
``memory.oom_control``); the mem isolator picks its watch by the files it finds.
"""

from __future__ import annotations

import os
import time

from agent_runtime.containerizer.cgroups import CgroupsV1, flat_keyed
from agent_runtime.errors import LaunchError

# v1 controller names to v2's: cpuacct's statistics live in v2's cpu.stat, blkio became io.
CONTROLLERS = {"cpuacct": "cpu", "blkio": "io"}
USER_HZ = os.sysconf("SC_CLK_TCK")
# What v1 shows for "no limit" (PAGE_COUNTER_MAX pages): v2 writes "max" instead.
V1_UNLIMITED = "9223372036854771712"
DEFAULT_CFS_PERIOD_US = 100_000
# v1 names with no v2 file at all: writing them is a bug in the caller, said plainly.
NO_V2_EQUIVALENT = ("cgroup.event_control", "memory.oom_control", "memory.memsw.limit_in_bytes")
# memory.stat: v1 key (and its hierarchical total_ twin) from the v2 key.
MEMORY_STAT = {"rss": "anon", "cache": "file", "mapped_file": "file_mapped",
               "unevictable": "unevictable", "shmem": "shmem"}


def shares_to_weight(shares: int) -> int:
    """cpu.shares [2, 262144] onto cpu.weight [1, 10000], as runc and systemd map them."""
    return 1 + ((shares - 2) * 9999) // 262142


def weight_to_shares(weight: int) -> int:
    return 2 + ((weight - 1) * 262142) // 9999


def _limit_to_v2(value: str) -> str:
    return "max" if value.strip() == "-1" else value


def _limit_to_v1(value: str) -> str:
    return V1_UNLIMITED if value.strip() == "max" else value



class CgroupsV2(CgroupsV1):
    """The v1 file operations (children, procs, remove) hold as they are: only the layout,
    the control names and the kill differ."""

    def path(self, controller: str, cgroup: str) -> str:
        return os.path.join(self.hierarchy, cgroup)

    def create(self, controller: str, cgroup: str) -> str:
        path = super().create(controller, cgroup)
        self._enable(CONTROLLERS.get(controller, controller), cgroup)
        return path

    def _enable(self, controller: str, cgroup: str) -> None:
        """``+controller`` in the subtree_control of every ancestor of ``cgroup``, top down: a
        controller reaches a cgroup only when each parent on the way hands it down."""
        parts = [part for part in cgroup.strip("/").split("/") if part]
        for depth in range(len(parts)):
            parent = os.path.join(self.hierarchy, *parts[:depth])
            with open(os.path.join(parent, "cgroup.controllers")) as file:
                available = file.read().split()
            if controller not in available:
                raise LaunchError(f"cgroup v2 controller {controller!r} is not available in "
                                  f"{parent} (cgroup.controllers: {' '.join(available)})")
            control = os.path.join(parent, "cgroup.subtree_control")
            with open(control) as file:
                # The kernel lists names bare; a '+' is tolerated for a hand-made tree.
                enabled = {name.lstrip("+") for name in file.read().split()}
            if controller not in enabled:
                try:
                    with open(control, "w") as file:
                        file.write(f"+{controller}")
                except OSError as exc:
                    raise LaunchError(f"Failed to enable {controller} in {control}: {exc}"
                                      ) from exc

    def write(self, controller: str, cgroup: str, control: str, value: str) -> None:
        if control in NO_V2_EQUIVALENT:
            raise LaunchError(f"{control} has no cgroup v2 equivalent")
        if control == "cpu.shares":
            super().write(controller, cgroup, "cpu.weight", str(shares_to_weight(int(value))))
        elif control in ("cpu.cfs_quota_us", "cpu.cfs_period_us"):
            quota, period = self._cpu_max(controller, cgroup)
            if control == "cpu.cfs_quota_us":
                quota = _limit_to_v2(value)
            else:
                period = value.strip()
            super().write(controller, cgroup, "cpu.max", f"{quota} {period}")
        elif control == "memory.limit_in_bytes":
            super().write(controller, cgroup, "memory.max", _limit_to_v2(value))
        elif control == "memory.soft_limit_in_bytes":
            super().write(controller, cgroup, "memory.low", _limit_to_v2(value))
        else:
            super().write(controller, cgroup, control, value)

    def _cpu_max(self, controller: str, cgroup: str) -> tuple[str, str]:
        """cpu.max's "quota period"; before the first write the kernel's default."""
        try:
            fields = super().read(controller, cgroup, "cpu.max").split()
        except FileNotFoundError:
            fields = []
        if len(fields) != 2:
            return "max", str(DEFAULT_CFS_PERIOD_US)
        return fields[0], fields[1]

    def read(self, controller: str, cgroup: str, control: str) -> str:
        raw = super().read
        if control == "memory.usage_in_bytes":
            return raw(controller, cgroup, "memory.current")
        if control == "memory.max_usage_in_bytes":
            # memory.peak is new (Linux 5.19); before it the current usage is the best we have.
            try:
                return raw(controller, cgroup, "memory.peak")
            except FileNotFoundError:
                return raw(controller, cgroup, "memory.current")
        if control == "memory.limit_in_bytes":
            return _limit_to_v1(raw(controller, cgroup, "memory.max"))
        if control == "memory.soft_limit_in_bytes":
            return _limit_to_v1(raw(controller, cgroup, "memory.low"))
        if control == "cpu.shares":
            return str(weight_to_shares(int(raw(controller, cgroup, "cpu.weight"))))
        if control == "cpu.cfs_quota_us":
            quota = self._cpu_max(controller, cgroup)[0]
            return "-1" if quota == "max" else quota
        if control == "cpu.cfs_period_us":
            return self._cpu_max(controller, cgroup)[1]
        if control == "cpuacct.stat":
            stat = flat_keyed(raw(controller, cgroup, "cpu.stat"))
            return "".join(f"{name} {stat.get(f'{name}_usec', 0) * USER_HZ // 1_000_000}\n"
                           for name in ("user", "system"))
        if control == "cpu.stat":
            stat = flat_keyed(raw(controller, cgroup, "cpu.stat"))
            return (f"nr_periods {stat.get('nr_periods', 0)}\n"
                    f"nr_throttled {stat.get('nr_throttled', 0)}\n"
                    f"throttled_time {stat.get('throttled_usec', 0) * 1000}\n")
        if control == "memory.stat":
            return self._memory_stat(controller, cgroup)
        return raw(controller, cgroup, control)

    def _memory_stat(self, controller: str, cgroup: str) -> str:
        stat = flat_keyed(super().read(controller, cgroup, "memory.stat"))
        out = dict(stat)
        for v1_key, v2_key in MEMORY_STAT.items():
            if v2_key in stat:
                out[v1_key] = out[f"total_{v1_key}"] = stat[v2_key]
        try:
            swap = int(super().read(controller, cgroup, "memory.swap.current"))
            out["swap"] = out["total_swap"] = swap
        except (FileNotFoundError, ValueError):
            pass
        return "".join(f"{key} {value}\n" for key, value in out.items())

    def kill_all(self, controller: str, cgroup: str, timeout: float = 5.0) -> None:
        """``cgroup.kill`` (Linux 5.14) kills every process at once, forks in flight included;
        without it, the v1 loop."""
        kill = os.path.join(self.path(controller, cgroup), "cgroup.kill")
        if not os.path.exists(kill) or not self.procs(controller, cgroup):
            super().kill_all(controller, cgroup, timeout)
            return
        super().write(controller, cgroup, "cgroup.kill", "1")
        deadline = time.monotonic() + timeout
        while pids := self.procs(controller, cgroup):
            if time.monotonic() > deadline:
                raise LaunchError(f"Processes {pids} survive cgroup.kill in {cgroup}")
            time.sleep(0.005)
