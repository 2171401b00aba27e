"""Confine the calling process before it runs a task: user, capabilities, no_new_privs, seccomp.

Run (standard library only) by the fork server's child for a command executor without an image
(the executor and its task share the confinement, as in Mesos) and by ``rootfs.py`` for a task
with one (only the task: the executor stays outside its container). The agent works out the
spec (``isolators/linux_capabilities.py``, ``linux_nnp.py``, ``linux_seccomp.py`` and the
user from ``--switch_user``) and hands it over as JSON::

    {"bounding": [0, 1, ...],     capability numbers kept in the bounding set (null: all)
     "effective": [0, 1, ...],    exactly what the task holds (null: what its uid gets)
     "no_new_privs": true,
     "seccomp": "<base64 BPF>",   a compiled filter (null: none)
     "uid": 65534, "gid": 65534, "groups": [65534]}

The order is runc's when no_new_privs is off: the bounding set is cut while we still hold
CAP_SETPCAP, the filter loads while we still hold CAP_SYS_ADMIN (after that the remaining steps
are syscalls every sane profile allows: prctl, setgroups, setgid, setuid, capset), then the user
switch keeping the capabilities asked for, then the exact sets, raised as ambient so they
survive the exec of an ordinary file.
"""

from __future__ import annotations

import base64
import os

from . import linux

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

def _mask(capabilities: list[int]) -> int:
    mask = 0
    for capability in capabilities:
        mask |= 1 << capability
    return mask


def confine(spec: dict[str, Any]) -> None:
    """Apply ``spec`` to this (single-threaded) process; raises OSError naming the step."""
    bounding = spec.get("bounding")
    effective = spec.get("effective")
    uid = spec.get("uid")
    root_task = (uid is None and os.geteuid() == 0) or uid == 0
    if bounding is not None:
        keep = set(bounding)
        for capability in range(linux.last_capability() + 1):
            if capability not in keep:
                linux.drop_bounding(capability)
    if effective is not None and root_task:
        # Root would otherwise regain every capability of its bounding set at the next exec.
        linux.set_securebits(linux.SECBITS_NOROOT)
    if spec.get("no_new_privs"):
        linux.set_no_new_privs()
    if spec.get("seccomp"):
        linux.load_seccomp(base64.b64decode(spec["seccomp"]))
    if uid is not None and uid != os.geteuid():
        if effective:
            linux.set_keep_capabilities()
        gid = int(spec.get("gid", uid))
        os.setgroups([int(group) for group in spec.get("groups", [gid])])
        os.setgid(gid)
        os.setuid(int(uid))
    if effective is not None:
        mask = _mask(effective)
        linux.set_capabilities(mask, mask, mask)
        for capability in effective:
            linux.raise_ambient(capability)
