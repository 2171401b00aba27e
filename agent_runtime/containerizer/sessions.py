"""Sessions: a command run inside a running container with its stdio handed to the caller
(Mesos's nested container sessions, what ``mesos task exec`` opens).

A containerizer that can enter its containers is a :class:`SessionHost`; what it returns is a
:class:`Session`, whichever way it got in (the Mesos containerizer's ``executors/nested.py``,
Docker's exec). The agent's operator API (``agent/nested.py``) speaks to these two only.
:class:`ProcessSession` is a session that is a child process of the agent, its stdio pipes or
one pty, read without blocking the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import signal
import struct
import subprocess
import termios
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import psutil

STDOUT, STDERR = "STDOUT", "STDERR"
READ_SIZE = 64 * 1024
# After the command exits, what it left in its pipes is still read for this long: a process
# it started in the background may hold them open for good.
DRAIN = 1.0


@dataclass(frozen=True)
class SessionRequest:
    argv: tuple[str, ...]
    environment: Mapping[str, str] = field(default_factory=dict)
    tty: bool = False
    user: str | None = None  # None: the task's own user


class Session(Protocol):
    tty: bool

    async def read(self) -> tuple[str, bytes] | None:
        """The next output (STDOUT or STDERR, bytes); None once the output has ended."""

    async def write(self, data: bytes) -> None:
        """Feed the command's stdin."""

    async def close_input(self) -> None:
        """End of input: the command's stdin reads EOF."""

    async def resize(self, rows: int, columns: int) -> None:
        """A TTY session's window size; nothing for others."""

    async def kill(self, signum: int) -> None:
        """Signal the command (and what it started in the session)."""

    async def wait(self) -> int:
        """The command's wait(2) status, once it has exited."""


@runtime_checkable
class SessionHost(Protocol):
    async def launch_session(self, container_id: str, request: SessionRequest) -> Session:
        """Run ``request`` in the running container ``container_id``; NotFound when there is
        no such container, Conflict when it cannot be entered now."""


def _nonblocking(fd: int) -> int:
    os.set_blocking(fd, False)
    return fd


class ProcessSession:
    """A child process of the agent: ``argv`` with pipes, or with a pty for a TTY session."""

    def __init__(self, popen: subprocess.Popen[bytes], outputs: Sequence[tuple[str, int]],
                 stdin: int, tty: bool) -> None:
        self.tty = tty
        self.popen = popen
        self._stdin: int | None = stdin
        self._queue: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue()
        self._open = {fd: kind for kind, fd in outputs}
        loop = asyncio.get_running_loop()
        for kind, fd in outputs:
            loop.add_reader(_nonblocking(fd), self._readable, fd, kind)
        self._exited: asyncio.Future[int] = loop.create_future()
        self._watcher = loop.create_task(self._watch())

    @classmethod
    def spawn(cls, argv: Sequence[str], env: Mapping[str, str], tty: bool,
              cwd: str = "/") -> ProcessSession:
        if tty:
            master, slave = os.openpty()
            try:
                popen = subprocess.Popen(list(argv), env=dict(env), cwd=cwd, stdin=slave,
                                         stdout=slave, stderr=slave, close_fds=True)
            finally:
                os.close(slave)
            return cls(popen, [(STDOUT, master)], os.dup(master), tty=True)
        popen = subprocess.Popen(list(argv), env=dict(env), cwd=cwd, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, close_fds=True)
        assert popen.stdin and popen.stdout and popen.stderr
        # Ours to close, each once: a copy left open would keep the command's stdin from EOF.
        session = cls(popen, [(STDOUT, os.dup(popen.stdout.fileno())),
                              (STDERR, os.dup(popen.stderr.fileno()))],
                      os.dup(popen.stdin.fileno()), tty=False)
        for pipe in (popen.stdin, popen.stdout, popen.stderr):
            pipe.close()
        return session

    def _readable(self, fd: int, kind: str) -> None:
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.EIO:  # EIO: a pty whose other end is all closed
                raise
            data = b""
        if data:
            self._queue.put_nowait((kind, data))
        else:
            self._close_output(fd)

    def _close_output(self, fd: int) -> None:
        if self._open.pop(fd, None) is None:
            return
        asyncio.get_running_loop().remove_reader(fd)
        os.close(fd)
        if not self._open:
            self._queue.put_nowait(None)

    async def _watch(self) -> None:
        status = await asyncio.to_thread(self._reap)
        self._exited.set_result(status)
        await asyncio.sleep(DRAIN)
        for fd in list(self._open):
            self._close_output(fd)

    def _reap(self) -> int:
        while True:
            try:
                _, status = os.waitpid(self.popen.pid, 0)
                self.popen.returncode = os.waitstatus_to_exitcode(status)
                return status
            except InterruptedError:
                continue

    async def read(self) -> tuple[str, bytes] | None:
        return await self._queue.get()

    async def write(self, data: bytes) -> None:
        fd = self._stdin
        if fd is None or not data:
            return
        # Off the loop: a command that never reads would block the write, not the agent.
        with contextlib.suppress(OSError):  # the command is gone or closed its stdin
            view = memoryview(data)
            while view:
                written = await asyncio.to_thread(os.write, fd, view)
                view = view[written:]

    async def close_input(self) -> None:
        if self._stdin is None:
            return
        fd, self._stdin = self._stdin, None
        if self.tty:
            # A pty has no half close: the line discipline's EOF (^D) ends the reader's input.
            with contextlib.suppress(OSError):
                await asyncio.to_thread(os.write, fd, b"\x04")
        os.close(fd)

    async def resize(self, rows: int, columns: int) -> None:
        if self.tty and self._open:
            fd = next(iter(self._open))
            with contextlib.suppress(OSError):
                fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))

    async def kill(self, signum: int = signal.SIGKILL) -> None:
        """Other signals go to the child, which passes them on; SIGKILL cannot be passed on,
        so it goes to every process of the session."""
        if self._exited.done():
            return
        try:
            tree = [psutil.Process(self.popen.pid)]
            if signum == signal.SIGKILL:
                tree += tree[0].children(recursive=True)
        except psutil.Error:
            return
        for process in tree:  # psutil checks each pid still names that process
            with contextlib.suppress(psutil.Error):
                process.send_signal(signum)

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)


__all__ = ["STDERR", "STDOUT", "ProcessSession", "Session", "SessionHost", "SessionRequest"]
