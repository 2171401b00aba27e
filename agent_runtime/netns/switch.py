"""A learning Ethernet switch over TAP devices that loses and delays frames per port.

``python -m agent_runtime.netns.switch TAP...`` creates the TAP devices, prints ``ready`` and
forwards frames between them until its stdin closes (so it never outlives whoever started it).
Commands on stdin, one a line, ports numbered in argument order from 0:

    impair <port> <loss 0..1> <delay seconds>     frames to or from the port
    cut <port> / heal <port>                      drop everything to and from the port

It does netem's job for the network-namespace hosts (``network.py``) because some kernels we run
on are built without netem. A frame between two impaired ports pays both, as it would crossing
two impaired links. Frames wait on the event loop's timers, so a delay costs no thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import random
import struct
import sys

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
MAX_FRAME = 65536


def open_tap(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    return fd


class Switch:
    def __init__(self, fds: list[int], loop: asyncio.AbstractEventLoop) -> None:
        self.fds = fds
        self.loop = loop
        self.where: dict[bytes, int] = {}  # MAC address -> the port it was last seen on
        self.loss = [0.0] * len(fds)
        self.delay = [0.0] * len(fds)
        self.cut: set[int] = set()

    def receive(self, port: int) -> None:
        while True:
            try:
                frame = os.read(self.fds[port], MAX_FRAME)
            except (BlockingIOError, OSError):
                return
            if len(frame) < 14 or port in self.cut:
                continue
            destination, source = frame[:6], frame[6:12]
            self.where[source] = port
            known = self.where.get(destination) if not destination[0] & 1 else None
            for out in [known] if known is not None else range(len(self.fds)):
                if out != port:
                    self._forward(port, out, frame)

    def _forward(self, port: int, out: int, frame: bytes) -> None:
        if out in self.cut:
            return
        kept = (1 - self.loss[port]) * (1 - self.loss[out])
        if random.random() >= kept:
            return
        delay = self.delay[port] + self.delay[out]
        if delay > 0:
            self.loop.call_later(delay, self._send, out, frame)
        else:
            self._send(out, frame)

    def _send(self, out: int, frame: bytes) -> None:
        if out in self.cut:
            return
        # A full queue or a port whose link is down loses the frame, as a wire would.
        with contextlib.suppress(OSError):
            os.write(self.fds[out], frame)

    def command(self, line: str) -> None:
        words = line.split()
        if not words:
            return
        port = int(words[1])
        if words[0] == "impair":
            self.loss[port], self.delay[port] = float(words[2]), float(words[3])
        elif words[0] == "cut":
            self.cut.add(port)
        elif words[0] == "heal":
            self.cut.discard(port)


async def serve(names: list[str]) -> None:
    loop = asyncio.get_running_loop()
    switch = Switch([open_tap(name) for name in names], loop)
    for port, fd in enumerate(switch.fds):
        loop.add_reader(fd, switch.receive, port)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("ready", flush=True)
    while line := await reader.readline():
        switch.command(line.decode())


def main() -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(sys.argv[1:]))


if __name__ == "__main__":
    main()
