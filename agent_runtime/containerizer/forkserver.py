"""The agent's end of the fork server (``executors/zygote.py``): command executors by fork.

One zygote per agent, started with the Mesos containerizer and asked for an executor per
command task. Its replies come in on a pipe the event loop watches; an executor's exit is told by
the zygote (it is the executor's parent), so its exit status is known as for a child of ours. If
the zygote dies, launches in flight fail, the executors it started are watched through pidfds
from then on (as adopted ones are), and the next launch starts a new zygote.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import subprocess
import sys
from collections.abc import Collection, Mapping
from typing import Any

from agent_runtime.containerizer.launcher import (
    PosixLauncher,
    Process,
    is_same_process,
    start_time_of,
)
from agent_runtime.errors import LaunchError

log = logging.getLogger(__name__)

_SPEC = importlib.util.find_spec("agent_runtime.executors.zygote")
assert _SPEC is not None and _SPEC.origin is not None
_ROOT = os.path.dirname(os.path.dirname(_SPEC.origin))  # the folder holding executors/
_STUB = ("import sys; sys.path[0] = sys.argv[1]; from executors import zygote; "
         "sys.exit(zygote.main())")


class ForkServer:
    def __init__(self, launcher: PosixLauncher) -> None:
        self.launcher = launcher
        self._zygote: subprocess.Popen[bytes] | None = None
        self._buffer = b""
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[Process]] = {}
        self._processes: dict[int, Process] = {}

    def start(self) -> None:
        if self._zygote is not None:
            return
        try:
            zygote = subprocess.Popen(
                [sys.executable, "-S", "-c", _STUB, _ROOT],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            raise LaunchError(f"Failed to start the executor fork server: {exc}") from exc
        assert zygote.stdout is not None
        os.set_blocking(zygote.stdout.fileno(), False)
        asyncio.get_running_loop().add_reader(zygote.stdout.fileno(), self._readable, zygote)
        self._zygote = zygote

    async def spawn(self, env: Mapping[str, str], cwd: str, stdout_path: str, stderr_path: str,
                    cgroup_procs: Collection[str] = (),
                    namespaces: Collection[str] = (),
                    security: Mapping[str, Any] | None = None,
                    hostname: str | None = None) -> Process:
        """Fork a command executor (see executors/zygote.py for the request's fields)."""
        self.start()
        zygote = self._zygote
        assert zygote is not None and zygote.stdin is not None
        loop = asyncio.get_running_loop()
        self._next_id += 1
        request_id = self._next_id
        future: asyncio.Future[Process] = loop.create_future()
        self._pending[request_id] = future
        request = {"id": request_id, "environment": dict(env), "directory": cwd,
                   "stdout": stdout_path, "stderr": stderr_path,
                   "cgroup_procs": list(cgroup_procs), "namespaces": sorted(namespaces)}
        if security:
            request["security"] = dict(security)
        if hostname:
            request["hostname"] = hostname
        try:
            zygote.stdin.write(json.dumps(request).encode() + b"\n")
            zygote.stdin.flush()
        except OSError as exc:
            self._pending.pop(request_id, None)
            self._lost(zygote)
            raise LaunchError(f"The executor fork server is gone: {exc}") from exc
        process = await future
        # It may have ended already (its exit can come in the same read as its pid).
        with contextlib.suppress(OSError):
            process.start_time = start_time_of(process.pid)
        return process

    def _readable(self, zygote: subprocess.Popen[bytes]) -> None:
        assert zygote.stdout is not None
        try:
            data = os.read(zygote.stdout.fileno(), 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._lost(zygote)
            return
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            if line.strip():
                self._message(json.loads(line))

    def _message(self, message: dict[str, Any]) -> None:
        if "exited" in message:
            pid, status = int(message["exited"]), int(message["status"])
            process = self._processes.pop(pid, None)
            # None: an orphan the zygote reaped as subreaper. (An executor's exit never comes
            # before its pid; it may come in the same read, before ``spawn`` resumes.)
            if process is not None and not process.exited.done():
                process.exited.set_result(status)
            return
        future = self._pending.pop(int(message["id"]), None)
        if future is None or future.done():
            return
        if "error" in message:
            future.set_exception(LaunchError(f"Failed to launch the executor: {message['error']}"))
            return
        pid = int(message["pid"])
        # Known from here on, so that an exit right behind this line finds it.
        process = self._processes[pid] = Process(
            pid, 0.0, asyncio.get_running_loop().create_future())
        future.set_result(process)

    def _lost(self, zygote: subprocess.Popen[bytes]) -> None:
        """The zygote died: fail what waits for it, watch its executors through pidfds."""
        if self._zygote is not zygote:
            return
        self._zygote = None
        self._buffer = b""
        assert zygote.stdout is not None
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(zygote.stdout.fileno())
        with contextlib.suppress(OSError):
            zygote.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            zygote.wait(1.0)
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(LaunchError("The executor fork server died"))
        processes, self._processes = self._processes, {}
        for process in processes.values():
            if _same_process(process):
                self.launcher.watch(process)
            elif not process.exited.done():
                process.exited.set_result(0)  # reaped by the zygote, its status with it
        log.warning("executor fork server exited; %d executors watched by pid", len(processes))

    async def close(self) -> None:
        zygote, self._zygote = self._zygote, None
        if zygote is None:
            return
        assert zygote.stdout is not None and zygote.stdin is not None
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(zygote.stdout.fileno())
        # Closing its stdin ends it; its executors live on for the next agent to adopt.
        with contextlib.suppress(OSError):
            zygote.stdin.close()
        try:
            await asyncio.to_thread(zygote.wait, 2.0)
        except subprocess.TimeoutExpired:
            zygote.kill()
            await asyncio.to_thread(zygote.wait)


def _same_process(process: Process) -> bool:
    """Whether ``process.pid`` still names that executor (and not a process that got the pid
    after the dead zygote reaped it)."""
    return is_same_process(process.pid, process.start_time)
