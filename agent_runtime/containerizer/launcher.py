"""The posix launcher: one process per executor, in its own session, watched through a pidfd.

A process is identified by its pid *and* its start time, so a recycled pid is never mistaken
for our executor after a restart. Exits are noticed by the event loop through ``pidfd_open``:
no thread and no polling per child.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import psutil

from agent_runtime.errors import LaunchError

# The PATH an executor gets when the agent has none (the agent side's one copy; executors/, which
# runs on the standard library alone, keeps its own in executors/rootfs.py).
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Joins the cgroups before the exec, so the executor's first instruction already runs inside
# them and no child it forks can escape. A shell and not ``preexec_fn``: preexec_fn is unsafe
# with threads and rules out vfork; writing after the spawn would race the executor's forks.
_JOIN_CGROUPS = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 127; shift; done; shift; exec "$@"'


def unshare_argv(namespaces: Collection[str]) -> list[str]:
    """util-linux ``unshare``: new namespaces for the command after it; with a pid namespace
    the command is pid 1 there and gets its own /proc, and dies with unshare (--kill-child)."""
    argv = ["unshare"]
    if "mount" in namespaces:
        argv.append("--mount")
        argv.append("--propagation=slave")
    if "ipc" in namespaces:
        argv.append("--ipc")
    if "uts" in namespaces:
        argv.append("--uts")
    if "pid" in namespaces:
        argv += ["--pid", "--fork", "--kill-child"]
        if "mount" in namespaces:
            argv.append("--mount-proc")
    return [*argv, "--"]


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Start times checkpointed before they were boot-relative were seconds since the epoch.
_EPOCH_START = 1e8


def start_time_of(pid: int) -> float:
    """When the process started, in seconds since boot (``starttime``, field 22 of
    /proc/<pid>/stat): it never changes for a process. Not psutil's ``create_time()``: that adds
    the boot time, which the kernel derives from the wall clock on every read, so NTP moves it
    and a process checkpointed by one agent looked like another process to the next one."""
    with open(f"/proc/{pid}/stat", "rb") as handle:
        data = handle.read()
    # The command name (field 2) may hold spaces and parentheses: fields start after the last ')'.
    return int(data[data.rfind(b")") + 2:].split()[19]) / _CLOCK_TICKS


def is_same_process(pid: int, start_time: float) -> bool:
    """Whether ``pid`` still names the process that started at ``start_time`` and is not a
    zombie (a recycled pid is someone else)."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        if start_time > _EPOCH_START:  # an older agent's checkpoint: the wall clock, roughly
            return abs(process.create_time() - start_time) < 1.0
        return abs(start_time_of(pid) - start_time) < 0.5 / _CLOCK_TICKS
    except (psutil.Error, OSError):
        return False


@dataclass(slots=True)
class Process:
    pid: int
    start_time: float
    exited: asyncio.Future[int] = field(repr=False)
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    # Adopted after an agent restart: not our child, so its exit status cannot be known.
    adopted: bool = False


def _status_of(status: int) -> int:
    """A wait status as Mesos reports it: the exit code, or minus the signal number."""
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


class PosixLauncher:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None

    async def launch(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: str,
        stdout_path: str,
        stderr_path: str,
        stdin_pipe: bool = False,
        cgroup_procs: Sequence[str] = (),
        namespaces: Collection[str] = (),
    ) -> Process:
        """Spawn; ``stdin_pipe`` gives the child a pipe (``process.popen.stdin``) to talk to;
        the process joins the ``cgroup_procs`` files' cgroups before it execs ``argv``, in new
        ``namespaces`` ("mount", "pid") when asked (command executors come from the fork
        server instead, see forkserver.py)."""
        loop = asyncio.get_running_loop()
        if namespaces:
            argv = [*unshare_argv(namespaces), *argv]
        if cgroup_procs:
            argv = ["/bin/sh", "-c", _JOIN_CGROUPS, "sh", *cgroup_procs, "--", *argv]
        try:
            with open(stdout_path, "ab") as out, open(stderr_path, "ab") as err:
                popen = subprocess.Popen(
                    list(argv), env=dict(env), cwd=cwd,
                    stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
                    stdout=out, stderr=err, start_new_session=True, close_fds=True,
                )
        except OSError as exc:
            raise LaunchError(f"Failed to launch {argv[0]!r}: {exc}") from exc
        try:
            start_time = start_time_of(popen.pid)
        except OSError:
            start_time = 0.0
        process = Process(popen.pid, start_time, loop.create_future(), popen)
        self.watch(process)
        return process

    def adopt(self, pid: int, start_time: float) -> Process | None:
        """Take back an executor a previous agent started, if that very process still runs
        (same pid *and* start time: a recycled pid is someone else)."""
        if not is_same_process(pid, start_time):
            return None
        loop = asyncio.get_running_loop()
        process = Process(pid, start_time, loop.create_future(), adopted=True)
        self.watch(process)
        return process

    def watch(self, process: Process) -> None:
        """Resolve ``process.exited`` when it ends, whoever its parent is."""
        loop = asyncio.get_running_loop()
        try:
            pidfd = os.pidfd_open(process.pid)
        except ProcessLookupError:
            self._reap(process)
            return

        def ready() -> None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
            self._reap(process)

        loop.add_reader(pidfd, ready)

    def _reap(self, process: Process) -> None:
        status = 0
        if process.popen is not None:
            try:
                _, raw = os.waitpid(process.pid, 0)
                status = _status_of(raw)
            except ChildProcessError:
                status = process.popen.returncode or 0
            process.popen.returncode = status
        if not process.exited.done():
            process.exited.set_result(status)

    @staticmethod
    def signal(process: Process, signum: int = signal.SIGKILL) -> None:
        """Signal the executor's whole session (process group)."""
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            pass
        except PermissionError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signum)

    async def destroy(self, process: Process, grace: float = 0.0) -> int:
        """SIGTERM, wait ``grace`` seconds, then SIGKILL, to the executor's process group and
        to every process under it (a task runs in a session of its own, and a cgroup or a
        pid namespace is not always there to catch it); returns the exit status.

        The tree is taken before the executor can die: its orphans are re-parented away from
        it. A process that left the tree before (a daemon) is out of reach, as with Mesos's
        posix launcher; cgroups and pid namespaces catch those."""
        tree = _descendants(process.pid)
        if grace > 0 and not process.exited.done():
            self.signal(process, signal.SIGTERM)
            try:
                status = await asyncio.wait_for(asyncio.shield(process.exited), grace)
            except TimeoutError:
                pass
            else:
                _kill(tree)
                return status
        tree.update(_descendants(process.pid))
        self.signal(process, signal.SIGKILL)
        _kill(tree)
        return await process.exited


def _descendants(pid: int) -> dict[int, psutil.Process]:
    try:
        return {child.pid: child for child in psutil.Process(pid).children(recursive=True)}
    except psutil.Error:
        return {}


def _kill(tree: dict[int, psutil.Process]) -> None:
    for child in tree.values():
        with contextlib.suppress(psutil.Error):
            child.kill()  # psutil checks the pid still names that same process
