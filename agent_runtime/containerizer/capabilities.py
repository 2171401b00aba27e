"""Capability names as Mesos and Docker write them, and the sets the flags and LinuxInfo give.

Mesos's ``CapabilityInfo.Capability`` numbers are the Linux numbers plus 1000 (so that 0 stays
"unset"); executors/security.py wants the Linux numbers.
"""

from __future__ import annotations

import json

from agent_runtime.errors import FlagError
from agent_runtime.proto import mesos_pb2

Capability = mesos_pb2.CapabilityInfo.Capability
OFFSET = 1000
# Docker's default set for containers, by Linux number: what a task with an image is bounded by
# (and holds, as root) unless linux/capabilities says otherwise. CHOWN DAC_OVERRIDE FOWNER
# FSETID KILL SETGID SETUID SETPCAP NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE
# SETFCAP: no SYS_ADMIN (mounts), SYS_PTRACE, SYS_MODULE, NET_ADMIN, DAC_READ_SEARCH...
DOCKER_DEFAULT = frozenset((0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31))


def number(name: str) -> int:
    """``NET_RAW``, ``CAP_NET_RAW`` or ``net_raw`` -> 13; ValueError for an unknown name."""
    key = name.strip().upper().removeprefix("CAP_")
    try:
        value = Capability.Value(key)
    except ValueError:
        raise ValueError(f"unknown capability {name!r}") from None
    if value < OFFSET:
        raise ValueError(f"unknown capability {name!r}")
    return value - OFFSET


def name(linux_number: int) -> str:
    return Capability.Name(Capability.ValueType(linux_number + OFFSET))


def from_info(info: mesos_pb2.CapabilityInfo) -> frozenset[int]:
    return frozenset(value - OFFSET for value in info.capabilities if value >= OFFSET)


def parse_flag(flag: str, text: str | None) -> frozenset[int] | None:
    """A capabilities flag: Mesos's JSON ``{"capabilities": ["NET_RAW", ...]}`` or a plain
    comma-separated list; None when unset. FlagError names the flag and the bad entry."""
    if text is None:
        return None
    try:
        if text.lstrip().startswith("{"):
            names = json.loads(text).get("capabilities", [])
            if not isinstance(names, list):
                raise ValueError("'capabilities' must be a list")
        else:
            names = [entry for entry in text.split(",") if entry.strip()]
        return frozenset(number(str(entry)) for entry in names)
    except (ValueError, AttributeError) as exc:
        raise FlagError(f"--{flag}: {exc}") from None


def describe(capabilities: frozenset[int]) -> str:
    return ", ".join(sorted(name(c) for c in capabilities)) or "none"
