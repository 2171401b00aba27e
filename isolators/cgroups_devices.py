"""``cgroups/devices``: a container may use only the devices on a whitelist (cgroup v1).

``prepare`` writes ``a`` to ``devices.deny`` (the cgroup starts with its parent's ``a *:* rwm``)
and then allows, as Mesos's ``DEFAULT_WHITELIST_ENTRIES``: mknod of any character or block
device (creating a node is harmless, opening it is what the list guards), and read, write and
mknod on the pseudo-devices every program expects (``/dev/null``, ``/dev/tty``, ptys...).
``--allowed_devices`` adds more, as Mesos's JSON ``DeviceWhitelist``::

    {"allowed_devices": [{"device": {"path": "/dev/fuse"},
                          "access": {"read": true, "write": true, "mknod": false}}]}

Each path is resolved (stat) once, at agent start, to its type and major:minor, so a bad flag
stops the agent instead of failing every launch. ``gpu/nvidia`` adds its own lines to the same
cgroup after this isolator's ``prepare``.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from google.protobuf import json_format

from agent_runtime.containerizer.cgroups import Cgroups
from agent_runtime.containerizer.containerizer import ContainerConfig
from agent_runtime.containerizer.isolation import Host
from agent_runtime.containerizer.isolator import LaunchInfo
from agent_runtime.errors import FlagError
from agent_runtime.proto import mesos_pb2

from .cgroup import CgroupIsolator

CONTROLLER = "devices"

# Mesos's src/slave/containerizer/mesos/isolators/cgroups/subsystems/devices.cpp, in its order.
DEFAULT_WHITELIST = (
    "c *:* m",
    "b *:* m",
    "c 5:1 rwm",  # /dev/console
    "c 4:0 rwm",  # /dev/tty0
    "c 4:1 rwm",  # /dev/tty1
    "c 136:* rwm",  # /dev/pts/*
    "c 5:2 rwm",  # /dev/ptmx
    "c 10:200 rwm",  # /dev/net/tun
    "c 1:3 rwm",  # /dev/null
    "c 1:5 rwm",  # /dev/zero
    "c 1:7 rwm",  # /dev/full
    "c 5:0 rwm",  # /dev/tty
    "c 1:9 rwm",  # /dev/urandom
    "c 1:8 rwm",  # /dev/random
)


def device_entry(kind: str, major: int, minor: int | None, access: str) -> str:
    """One ``devices.allow``/``devices.deny`` line: ``c 195:0 rwm`` (``None`` minor: ``*``)."""
    return f"{kind} {major}:{'*' if minor is None else minor} {access}"


def allowed_entries(flag: str | None) -> tuple[str, ...]:
    """``--allowed_devices`` as whitelist lines; FlagError names what is wrong."""
    if not flag:
        return ()
    whitelist = mesos_pb2.DeviceWhitelist()
    try:
        json_format.Parse(flag, whitelist)
    except json_format.ParseError as exc:  # bad JSON included
        raise FlagError(f"--allowed_devices: not a DeviceWhitelist: {exc}") from exc
    entries = []
    for allowed in whitelist.allowed_devices:
        path = allowed.device.path
        if not path:
            raise FlagError("--allowed_devices: every device needs a 'path'")
        try:
            mode = os.stat(path)
        except OSError as exc:
            raise FlagError(f"--allowed_devices: {path}: {exc.strerror}") from exc
        if stat.S_ISCHR(mode.st_mode):
            kind = "c"
        elif stat.S_ISBLK(mode.st_mode):
            kind = "b"
        else:
            raise FlagError(f"--allowed_devices: {path} is not a device")
        access = "".join(letter for letter, wanted in (
            ("r", allowed.access.read), ("w", allowed.access.write),
            ("m", allowed.access.mknod)) if wanted)
        if not access:
            raise FlagError(f"--allowed_devices: {path} is given no access")
        entries.append(device_entry(kind, os.major(mode.st_rdev), os.minor(mode.st_rdev), access))
    return tuple(entries)


class DevicesIsolator(CgroupIsolator):
    controller = CONTROLLER

    def __init__(self, cgroups: Cgroups, root: str, allowed: tuple[str, ...] = ()) -> None:
        # A unified (v2) hierarchy has no devices files: it filters devices with an eBPF
        # program, which this isolator does not load (yet). Refuse at start, not per launch.
        if not os.path.exists(os.path.join(cgroups.path(CONTROLLER, ""), "devices.allow")):
            raise FlagError("--isolation: cgroups/devices needs the cgroup v1 devices "
                            f"controller at {cgroups.path(CONTROLLER, '')}")
        super().__init__(cgroups, root)
        self.whitelist = DEFAULT_WHITELIST + allowed

    async def prepare(self, container_id: str, config: ContainerConfig) -> LaunchInfo | None:
        cgroup = self.cgroup(container_id)
        self.cgroups.create(self.controller, cgroup)
        # Deny first: v1 children start as a copy of the parent's list, here "a *:* rwm".
        self.cgroups.write(self.controller, cgroup, "devices.deny", "a")
        for entry in self.whitelist:
            self.cgroups.write(self.controller, cgroup, "devices.allow", entry)
        return LaunchInfo(cgroup_procs=(self.procs_file(container_id),))


@dataclass(frozen=True)
class DevicesConfig:
    allowed_devices: str | None = None  # --allowed_devices, Mesos's JSON DeviceWhitelist


def create(config: DevicesConfig, host: Host) -> DevicesIsolator:
    return DevicesIsolator(host.backend(), host.cgroups_root,
                           allowed_entries(config.allowed_devices))
