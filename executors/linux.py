"""The Linux system calls the launcher's helpers need and the standard library lacks.

``unshare``, ``mount``, ``umount2``, ``pivot_root`` and ``prctl`` through ctypes: the helpers
that use them (the fork server and the rootfs entry) run with ``python -S`` and the standard
library only, so no third-party binding is at hand, and these are five thin calls. Each raises
OSError with the errno and the arguments, so a failed mount says which one.
"""

from __future__ import annotations

import ctypes
import os

CLONE_NEWNS = 0x00020000
CLONE_NEWPID = 0x20000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MNT_DETACH = 2

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
SYS_PIVOT_ROOT = 155  # x86_64; aarch64 has 41
if os.uname().machine == "aarch64":
    SYS_PIVOT_ROOT = 41

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _bytes(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), f"unshare({flags:#x})")


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    _check(_libc.mount(_bytes(source), _bytes(target), _bytes(fstype), ctypes.c_ulong(flags),
                       _bytes(data)),
           f"mount {source} on {target} (type {fstype}, flags {flags:#x})")


def umount2(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(_bytes(target), ctypes.c_int(flags)), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    _check(_libc.syscall(ctypes.c_long(SYS_PIVOT_ROOT), _bytes(new_root), _bytes(put_old)),
           f"pivot_root({new_root}, {put_old})")


def set_parent_death_signal(signum: int) -> None:
    _check(_libc.prctl(ctypes.c_int(PR_SET_PDEATHSIG), ctypes.c_ulong(signum), 0, 0, 0),
           "prctl(PR_SET_PDEATHSIG)")


def set_child_subreaper() -> None:
    """Orphaned descendants are re-parented to us (and reaped by us), not to init."""
    _check(_libc.prctl(ctypes.c_int(PR_SET_CHILD_SUBREAPER), ctypes.c_ulong(1), 0, 0, 0),
           "prctl(PR_SET_CHILD_SUBREAPER)")


# --- Namespaces, capabilities, seccomp: what a container's task is confined with. ---------
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000

PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_SET_SECCOMP = 22
PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECCOMP_MODE_FILTER = 2
# SECBIT_NOROOT and its lock: root gets no capabilities from executing a file, so a root task
# keeps exactly the ones it is given (else every exec would refill them up to the bounding set).
SECBITS_NOROOT = 0x1 | 0x2
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32))


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


def _prctl(option: int, arg: int, what: str) -> None:
    _check(_libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg), ctypes.c_ulong(0),
                       ctypes.c_ulong(0), ctypes.c_ulong(0)), what)


def last_capability() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as file:
            return int(file.read())
    except (OSError, ValueError):
        return 40


def set_dumpable(dumpable: bool) -> None:
    """Not dumpable: only a holder of CAP_SYS_PTRACE may ptrace us or open our /proc files."""
    _prctl(PR_SET_DUMPABLE, int(dumpable), "prctl(PR_SET_DUMPABLE)")


def set_no_new_privs() -> None:
    _prctl(PR_SET_NO_NEW_PRIVS, 1, "prctl(PR_SET_NO_NEW_PRIVS)")


def set_keep_capabilities() -> None:
    _prctl(PR_SET_KEEPCAPS, 1, "prctl(PR_SET_KEEPCAPS)")


def set_securebits(bits: int) -> None:
    _prctl(PR_SET_SECUREBITS, bits, "prctl(PR_SET_SECUREBITS)")


def drop_bounding(capability: int) -> None:
    _prctl(PR_CAPBSET_DROP, capability, f"prctl(PR_CAPBSET_DROP, {capability})")


def set_capabilities(effective: int, permitted: int, inheritable: int) -> None:
    """capset(2) for this thread (the helpers are single-threaded): 64-bit masks."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)(
        _CapData(effective & 0xFFFFFFFF, permitted & 0xFFFFFFFF, inheritable & 0xFFFFFFFF),
        _CapData(effective >> 32, permitted >> 32, inheritable >> 32))
    _check(_libc.capset(ctypes.byref(header), ctypes.byref(data)), "capset")


def raise_ambient(capability: int) -> None:
    _check(_libc.prctl(ctypes.c_int(PR_CAP_AMBIENT), ctypes.c_ulong(PR_CAP_AMBIENT_RAISE),
                       ctypes.c_ulong(capability), ctypes.c_ulong(0), ctypes.c_ulong(0)),
           f"prctl(PR_CAP_AMBIENT_RAISE, {capability})")


def load_seccomp(program: bytes) -> None:
    """Install a compiled seccomp BPF program (``struct sock_filter`` array, 8 bytes each)."""
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    _check(_libc.prctl(ctypes.c_int(PR_SET_SECCOMP), ctypes.c_ulong(SECCOMP_MODE_FILTER),
                       ctypes.byref(fprog), ctypes.c_ulong(0), ctypes.c_ulong(0)),
           "prctl(PR_SET_SECCOMP)")


def set_hostname(name: str) -> None:
    encoded = name.encode()
    _check(_libc.sethostname(encoded, ctypes.c_size_t(len(encoded))), "sethostname")


def setns(fd: int, nstype: int = 0) -> None:
    """Join the namespace ``fd`` names (Python 3.11's ``os`` has no ``setns``)."""
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), f"setns({fd}, {nstype:#x})")
