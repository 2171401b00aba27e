"""Seccomp profiles in Docker's JSON format (Mesos's ``linux/seccomp`` reads the same), compiled
to a BPF program with libseccomp through ``pyseccomp`` (a ctypes binding, API-compatible with
libseccomp's own Python module, so no compiler is needed at install time).

A profile is compiled once per set of capabilities the task holds (rules can be conditional on
them, ``includes``/``excludes.caps``) and the program cached: a launch only copies bytes. The
task loads it with prctl (executors/security.py), which needs no libseccomp.

Only the native architecture is allowed: a 32-bit system call from a 64-bit task (int 0x80, the
classic way around a 64-bit-only filter) kills it.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Collection, Mapping
from typing import Any

import pyseccomp

from agent_runtime.containerizer import capabilities

OPERATORS = {"SCMP_CMP_NE": pyseccomp.NE, "SCMP_CMP_LT": pyseccomp.LT,
             "SCMP_CMP_LE": pyseccomp.LE, "SCMP_CMP_EQ": pyseccomp.EQ,
             "SCMP_CMP_GE": pyseccomp.GE, "SCMP_CMP_GT": pyseccomp.GT,
             "SCMP_CMP_MASKED_EQ": pyseccomp.MASKED_EQ}
ALL_CAPABILITIES = frozenset(range(41))


class ProfileError(ValueError):
    """A profile that cannot be read or compiled; the message names the file and the field."""


def _action(name: str, errno_ret: int | None) -> int:
    if name == "SCMP_ACT_ALLOW":
        return int(pyseccomp.ALLOW)
    if name == "SCMP_ACT_ERRNO":
        return int(pyseccomp.ERRNO(errno.EPERM if errno_ret is None else errno_ret))
    if name in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return int(pyseccomp.KILL)
    if name == "SCMP_ACT_KILL_PROCESS":
        return int(pyseccomp.KILL_PROCESS)
    if name == "SCMP_ACT_TRAP":
        return int(pyseccomp.TRAP)
    if name == "SCMP_ACT_LOG":
        return int(pyseccomp.LOG)
    raise ProfileError(f"unsupported action {name!r}")


def _applies(rule: Mapping[str, Any], held: frozenset[int]) -> bool:
    """A rule's ``includes.caps`` must all be held, its ``excludes.caps`` none of them."""
    def caps(section: str) -> frozenset[int]:
        names = rule.get(section, {}).get("caps", [])
        try:
            return frozenset(capabilities.number(str(n)) for n in names)
        except ValueError as exc:
            raise ProfileError(f"{section}.caps: {exc}") from None
    return caps("includes") <= held and not caps("excludes") & held


def _arguments(rule: Mapping[str, Any]) -> list[list[Any]]:
    """The argument conditions: ANDed in one rule, unless two test the same argument, which
    Docker's format reads as alternatives (one rule each)."""
    conditions = []
    for arg in rule.get("args") or []:
        op = OPERATORS.get(arg.get("op", ""))
        if op is None:
            raise ProfileError(f"unsupported argument operator {arg.get('op')!r}")
        index, value = int(arg["index"]), int(arg["value"])
        if op == pyseccomp.MASKED_EQ:
            # Docker writes (mask in value, datum in valueTwo); libseccomp wants the same.
            conditions.append(pyseccomp.Arg(index, op, value, int(arg.get("valueTwo", 0))))
        else:
            conditions.append(pyseccomp.Arg(index, op, value))
    indexes = [int(arg["index"]) for arg in rule.get("args") or []]
    if len(set(indexes)) < len(indexes):
        return [[condition] for condition in conditions]
    return [conditions]


def compile_profile(profile: Mapping[str, Any], held: Collection[int]) -> bytes:
    """The BPF program for a task holding the capabilities ``held``."""
    held = frozenset(held)
    default = _action(str(profile.get("defaultAction", "")), profile.get("defaultErrnoRet"))
    syscall_filter = pyseccomp.SyscallFilter(default)
    # A binary tree of system call numbers rather than libseccomp's default linear list: with
    # some 350 rules that halves what every system call of the task pays (measured 235 -> 111
    # ns on this machine). libseccomp before 2.5 lacks the attribute; the list works there.
    with contextlib.suppress(OSError, RuntimeError, ValueError):
        syscall_filter.set_attr(pyseccomp.Attr.CTL_OPTIMIZE, 2)
    for rule in profile.get("syscalls", []):
        if not _applies(rule, held):
            continue
        action = _action(str(rule.get("action", "")), rule.get("errnoRet"))
        if action == default:
            continue
        names = rule.get("names") or ([rule["name"]] if "name" in rule else [])
        for name in names:
            for conditions in _arguments(rule):
                try:
                    syscall_filter.add_rule(action, str(name), *conditions)
                except (OSError, RuntimeError, ValueError) as exc:
                    # A name this kernel's libseccomp does not know (another architecture's,
                    # or newer): nothing to allow or deny. Anything else is the profile's.
                    if isinstance(exc, ValueError) or getattr(exc, "errno", None) in (
                            errno.EFAULT, errno.EINVAL, errno.EEXIST, errno.EDOM):
                        continue
                    raise ProfileError(f"rule for {name!r}: {exc}") from None
    with tempfile.TemporaryFile() as file:
        syscall_filter.export_bpf(file)
        file.seek(0)
        return file.read()


def load(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as file:
            profile = json.load(file)
    except (OSError, ValueError) as exc:
        raise ProfileError(f"cannot read seccomp profile {path}: {exc}") from None
    if not isinstance(profile, dict) or "defaultAction" not in profile:
        raise ProfileError(f"seccomp profile {path}: not a profile (no 'defaultAction')")
    return profile


class ProfileBook:
    """The profiles of ``--seccomp_config_dir`` by name, compiled programs cached per
    capability set."""

    def __init__(self, directory: str) -> None:
        self.directory = os.path.realpath(directory)
        self._profiles: dict[str, dict[str, Any]] = {}
        self._programs: dict[tuple[str, frozenset[int]], str] = {}

    def path(self, name: str) -> str:
        """A profile name is a path relative to the directory, and stays inside it."""
        if not name or "\0" in name or os.path.isabs(name):
            raise ProfileError(f"invalid seccomp profile name {name!r}")
        path = os.path.realpath(os.path.join(self.directory, name))
        if os.path.commonpath([path, self.directory]) != self.directory:
            raise ProfileError(f"seccomp profile {name!r} lies outside --seccomp_config_dir")
        return path

    def cached(self, name: str, held: frozenset[int]) -> str | None:
        """The program if it was compiled already (the launch path: no thread hop)."""
        return self._programs.get((name, held))

    def program(self, name: str, held: frozenset[int]) -> str:
        """The base64 BPF program of profile ``name`` for a task holding ``held``."""
        key = (name, held)
        program = self._programs.get(key)
        if program is None:
            profile = self._profiles.get(name)
            if profile is None:
                profile = self._profiles[name] = load(self.path(name))
            try:
                compiled = compile_profile(profile, held)
            except ProfileError as exc:
                raise ProfileError(f"seccomp profile {name!r}: {exc}") from None
            program = self._programs[key] = base64.b64encode(compiled).decode()
        return program
