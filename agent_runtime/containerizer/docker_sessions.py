"""Sessions into the Docker containerizer's containers: ``docker exec`` through the engine seam.

The engine keeps the command in the container's namespaces and cgroups with the container's
capabilities (an exec is never privileged here), as the container's user unless the request
names another, which the engine looks up in the container. Output arrives on the exec's
hijacked connection, in 8-byte framed blocks (stream, 0, 0, 0, big-endian size) unless it is a
TTY session; stdin is written to the same connection and ended by closing its write half.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import struct

from agent_runtime.containerizer.docker_engine import DockerEngine, DockerEngineError
from agent_runtime.containerizer.sessions import STDERR, STDOUT, SessionRequest
from agent_runtime.errors import Conflict

READ_SIZE = 64 * 1024
HEADER = struct.Struct(">BxxxI")
STREAMS = {1: STDOUT, 2: STDERR}
EXIT_POLL = 0.05


class DockerSession:
    def __init__(self, engine: DockerEngine, exec_id: str, sock: socket.socket,
                 tty: bool) -> None:
        self.engine = engine
        self.exec_id = exec_id
        self.sock = sock
        self.tty = tty
        self._buffer = b""
        self._ended = False
        self._input_open = True

    @classmethod
    async def start(cls, engine: DockerEngine, container: str,
                    request: SessionRequest) -> DockerSession:
        try:
            exec_id = await engine.exec_create(container, list(request.argv), tty=request.tty,
                                               environment=request.environment,
                                               user=request.user)
            sock = await engine.exec_attach(exec_id, request.tty)
        except DockerEngineError as exc:
            raise Conflict(f"Cannot run the command in container {container}: {exc}") from exc
        return cls(engine, exec_id, sock, request.tty)

    async def _more(self) -> bool:
        data = await asyncio.get_running_loop().sock_recv(self.sock, READ_SIZE)
        self._buffer += data
        return bool(data)

    async def read(self) -> tuple[str, bytes] | None:
        if self._ended:
            return None
        try:
            if self.tty:
                if self._buffer or await self._more():
                    data, self._buffer = self._buffer, b""
                    return STDOUT, data
            else:
                while True:
                    if len(self._buffer) >= HEADER.size:
                        kind, size = HEADER.unpack_from(self._buffer)
                        if len(self._buffer) >= HEADER.size + size:
                            data = self._buffer[HEADER.size:HEADER.size + size]
                            self._buffer = self._buffer[HEADER.size + size:]
                            if kind in STREAMS and data:
                                return STREAMS[kind], data
                            continue
                    if not await self._more():
                        break
        except OSError:
            pass
        self._ended = True
        self.sock.close()
        return None

    async def write(self, data: bytes) -> None:
        if self._input_open and data and not self._ended:
            with contextlib.suppress(OSError):
                await asyncio.get_running_loop().sock_sendall(self.sock, data)

    async def close_input(self) -> None:
        if self._input_open and not self._ended:
            self._input_open = False
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_WR)

    async def resize(self, rows: int, columns: int) -> None:
        if self.tty:
            with contextlib.suppress(DockerEngineError):
                await self.engine.exec_resize(self.exec_id, rows, columns)

    async def kill(self, signum: int = signal.SIGKILL) -> None:
        # The engine has no call to signal an exec: its pid, as the host sees it, has one.
        with contextlib.suppress(DockerEngineError, OSError):
            found = await self.engine.exec_inspect(self.exec_id)
            pid = int(found.get("Pid") or 0)
            if found.get("Running") and pid > 0:
                os.kill(pid, signum)

    async def wait(self) -> int:
        while True:
            try:
                found = await self.engine.exec_inspect(self.exec_id)
            except DockerEngineError:
                return 255 << 8  # the container is gone, and the exec with it
            if not found.get("Running") and found.get("ExitCode") is not None:
                code = int(found["ExitCode"])
                # Docker reports 128+n for a command killed by signal n; wait(2) would say n.
                if 128 < code < 128 + 65:
                    return code - 128
                return (code & 0xFF) << 8
            await asyncio.sleep(EXIT_POLL)


__all__ = ["DockerSession"]
