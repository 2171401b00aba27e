"""The fork server: command executors forked from one warm Python, not started afresh.

A Python start costs ~25 ms of CPU and ~5 MB of private memory per executor; a fork of a process
that already imported the executor costs about a millisecond and shares those pages copy-on-write
(``gc.freeze`` keeps the collector from touching, and so copying, them). The agent starts one
zygote and talks to it over its stdin and stdout, a JSON object a line::

    agent -> zygote   {"id": 7, "environment": {...}, "directory": "/sandbox",
                       "stdout": "/sandbox/stdout", "stderr": "/sandbox/stderr",
                       "cgroup_procs": [".../cgroup.procs", ...], "namespaces": ["mount", "pid"],
                       "hostname": "...", "security": {...}}   (namespaces/uts; security.py)
    zygote -> agent   {"id": 7, "pid": 4242}          the executor runs (pid as the host sees it)
                      {"id": 7, "error": "..."}       it could not be started
                      {"exited": 4242, "status": 0}   an executor ended (-N: killed by signal N)

The child joins its cgroups and namespaces before it runs a line of the executor. A new pid
namespace only takes effect for the children of whoever unshares it, so for one a middle process
unshares, forks the executor (pid 1 inside), reports its pid and exits; the zygote is a child
subreaper, so the executor is re-parented to it and its exit is still reported. The zygote exits
when its stdin closes (the agent is gone); executors live on, each leading a process group of
its own, for a restarted agent to adopt.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import select
import signal
import sys
import traceback

from . import command, linux, security

# Imported lazily by the executor's first connection (getaddrinfo encodes the host name): done
# here, while we are root, because --switch_user may run the executor as a user who cannot
# read the interpreter's files (a pyenv under /root, say).
import encodings.idna  # noqa: F401  isort: skip

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

def _send(message: dict[str, Any]) -> None:
    # One write per line: lines from the zygote and from middle processes never interleave.
    os.write(1, (json.dumps(message) + "\n").encode())


def _status(raw: int) -> int:
    return -os.WTERMSIG(raw) if os.WIFSIGNALED(raw) else os.WEXITSTATUS(raw)


def _join_cgroups(pid: int, request: dict[str, Any]) -> None:
    for procs in request.get("cgroup_procs", ()):
        with open(procs, "w") as file:
            file.write(str(pid))


def _own_group(pid: int) -> None:
    """Make ``pid`` lead its process group before anyone hears of it: the agent signals the
    group, and the child's own setsid may not have run yet. (Parent and child both try, the
    old job-control idiom; whoever comes second fails harmlessly.)"""
    with contextlib.suppress(OSError):
        os.setpgid(pid, pid)


def _unshare_mount() -> None:
    linux.unshare(linux.CLONE_NEWNS)
    # Our mounts stay ours; the host's later mounts and unmounts still reach us (slave).
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_SLAVE)


def _other_namespaces(request: dict[str, Any]) -> int:
    """The clone flags for ``namespaces/ipc`` and ``namespaces/uts``."""
    namespaces = request.get("namespaces", ())
    return (linux.CLONE_NEWIPC if "ipc" in namespaces else 0) | \
        (linux.CLONE_NEWUTS if "uts" in namespaces else 0)


def _run_executor(request: dict[str, Any]) -> int:
    """In the executor process: its files, environment and sandbox, its confinement (shared
    with its task), then the executor."""
    with contextlib.suppress(OSError):
        os.setsid()
    namespaces = request.get("namespaces", ())
    if "pid" not in namespaces and _other_namespaces(request):
        linux.unshare(_other_namespaces(request))
    if "uts" in namespaces and request.get("hostname"):
        linux.set_hostname(request["hostname"])
    if "mount" in namespaces:
        if "pid" in namespaces:
            # Our own /proc: the container sees its own processes only.
            linux.mount("proc", "/proc", "proc",
                        linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
        else:
            _unshare_mount()
    null = os.open(os.devnull, os.O_RDONLY)
    out = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    for fd, target in ((null, 0), (out, 1), (err, 2)):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["directory"])
    os.environ.clear()
    os.environ.update(request["environment"])
    if request.get("security"):
        security.confine(request["security"])
    # Out of its task's reach (ptrace, /proc/<pid>/fd) unless that task holds CAP_SYS_PTRACE.
    linux.set_dumpable(False)
    code: int = command.main()
    return code


def _middle(request: dict[str, Any]) -> int:
    """For a pid namespace: join, unshare, fork the executor (pid 1 inside), report it."""
    try:
        _join_cgroups(os.getpid(), request)
        if "mount" in request.get("namespaces", ()):
            _unshare_mount()
        linux.unshare(linux.CLONE_NEWPID | _other_namespaces(request))
        pid = os.fork()
    except OSError as exc:
        _send({"id": request["id"], "error": str(exc)})
        return 127
    if pid == 0:
        _exit_with(_run_executor, request)
    _own_group(pid)
    _send({"id": request["id"], "pid": pid})
    return 0


def _exit_with(run: Callable[[dict[str, Any]], int], request: dict[str, Any]) -> None:
    """Never returns: runs ``run`` in this forked child and exits with its status."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        code = run(request)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


class Zygote:
    def __init__(self) -> None:
        self.buffer = b""
        # Children whose exits are not executors': middle processes (by request id, so one
        # that dies before it reports still fails its launch) and children killed at launch.
        self.unreported: dict[int, Any] = {}
        self.wakeup_r, self.wakeup_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def launch(self, request: dict[str, Any]) -> None:
        middle = "pid" in request.get("namespaces", ())
        # The child holds until its cgroups are joined: a cgroup migration can wait out an RCU
        # grace period (milliseconds), and an executor let go at once could subscribe, get its
        # task and fork it outside the cgroups meanwhile.
        hold, go = os.pipe2(os.O_CLOEXEC) if not middle else (-1, -1)
        try:
            pid = os.fork()
        except OSError:
            if not middle:
                os.close(hold)
                os.close(go)
            raise
        if pid == 0:
            os.close(self.wakeup_r)
            os.close(self.wakeup_w)
            if not middle:
                os.close(go)
                if os.read(hold, 1) != b"1":
                    os._exit(127)
                os.close(hold)
            _exit_with(_middle if middle else _run_executor, request)
        if middle:
            self.unreported[pid] = request["id"]  # it reports, or fails, on its own
            return
        os.close(hold)
        try:
            _join_cgroups(pid, request)
        except OSError as exc:
            os.close(go)  # the child exits
            self.unreported[pid] = None
            _send({"id": request["id"], "error": str(exc)})
            return
        _own_group(pid)
        os.write(go, b"1")
        os.close(go)
        _send({"id": request["id"], "pid": pid})

    def reap(self) -> None:
        while True:
            try:
                pid, raw = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in self.unreported:
                request_id = self.unreported.pop(pid)
                if request_id is not None and raw != 0:
                    # Ignored by the agent when the middle had reported (success or error).
                    _send({"id": request_id, "error": f"launch helper ended ({_status(raw)})"})
                continue
            _send({"exited": pid, "status": _status(raw)})

    def requests(self, data: bytes) -> list[dict[str, Any]]:
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        return [json.loads(line) for line in lines if line.strip()]

    def serve(self) -> int:
        linux.set_child_subreaper()
        signal.set_wakeup_fd(self.wakeup_w)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        gc.freeze()
        while True:
            ready, _, _ = select.select([0, self.wakeup_r], [], [])
            if self.wakeup_r in ready:
                while True:
                    try:
                        if not os.read(self.wakeup_r, 512):
                            break
                    except BlockingIOError:
                        break
                self.reap()
            if 0 in ready:
                data = os.read(0, 65536)
                if not data:
                    return 0
                for request in self.requests(data):
                    try:
                        self.launch(request)
                    except OSError as exc:
                        _send({"id": request.get("id"), "error": str(exc)})


def main() -> int:
    return Zygote().serve()


if __name__ == "__main__":
    sys.exit(main())
