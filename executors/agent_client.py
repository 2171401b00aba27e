"""How an executor talks to the agent: the v1 executor HTTP API in JSON over loopback.

:class:`HttpConnection` is a minimal HTTP/1.1 client (the docker executor also reaches the
Docker Engine with it, over a unix socket), :class:`AgentConnection` makes the executor's calls
on one keep-alive connection, and :func:`read_events` decodes the subscription's RecordIO
stream. Standard library only, and only what is imported here: every executor imports this
module, and its import time is every task's launch latency.
"""

from __future__ import annotations

import json
import os
import queue
import select
import socket

from . import tls

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl
    from collections.abc import Iterator, Mapping
    from typing import Any

    Json = Any


class HttpConnection:
    """A minimal HTTP/1.1 client for loopback calls to the agent (and, over a unix socket, to
    the Docker Engine for the docker executor).

    ``http.client`` would do, but importing it (with ``email`` and ``ssl``) costs more start-up
    time than the rest of this executor together, and that time is every task's launch latency.
    The answers we read have two shapes only: a sized body, or a chunked stream.
    """

    def __init__(self, endpoint: str, timeout: float | None, unix_socket: str | None = None,
                 token: str | None = None, context: ssl.SSLContext | None = None) -> None:
        # The executor's identity (MESOS_EXECUTOR_AUTHENTICATION_TOKEN), sent on every call.
        self.authorization = f"Authorization: Bearer {token}\r\n" if token else ""
        if unix_socket is not None:
            self.host = "docker"
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(unix_socket)
        else:
            host, _, port = endpoint.rpartition(":")
            self.host = host
            self.sock = socket.create_connection((host, int(port)), timeout=timeout)
            if context is not None:  # the agent speaks TLS (LIBPROCESS_SSL_ENABLED)
                self.sock = context.wrap_socket(self.sock, server_hostname=host)
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def stale(self) -> bool:
        """Whether a kept-alive connection, with no request outstanding, has something to read:
        the agent closed it (it closes idle ones) or wrote to it unasked. Either way it cannot
        carry the next request."""
        if self.buffer or getattr(self.sock, "pending", lambda: 0)():  # TLS: decrypted, unread
            return True
        poller = select.poll()  # not select(): it refuses descriptors past 1023
        poller.register(self.sock, select.POLLIN)
        try:
            return bool(poller.poll(0))
        except OSError:
            return True

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the agent closed the connection")
        self.buffer += data

    def _line(self) -> bytes:
        while True:
            end = self.buffer.find(b"\r\n")
            if end >= 0:
                line, self.buffer = self.buffer[:end], self.buffer[end + 2:]
                return line
            self._fill()

    def _exact(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def request(self, body: bytes, accept: str | None = None) -> tuple[int, dict[str, str]]:
        """Send a POST to the executor API; returns the status code and the headers."""
        return self.send("POST", "/api/v1/executor", body, accept)

    def send(self, method: str, path: str, body: bytes, accept: str | None = None
             ) -> tuple[int, dict[str, str]]:
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                f"{self.authorization}")
        if accept:
            head += f"Accept: {accept}\r\n"
        self.sock.sendall(head.encode() + b"\r\n" + body)
        status = int(self._line().split()[1])
        headers: dict[str, str] = {}
        while True:
            line = self._line()
            if not line:
                return status, headers
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()

    def body(self, headers: dict[str, str]) -> bytes:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            return b"".join(self.chunks())
        return self._exact(int(headers.get("content-length", "0")))

    def chunks(self) -> Iterator[bytes]:
        while True:
            size = int(self._line().split(b";")[0], 16)
            if size == 0:
                self._line()
                return
            yield self._exact(size)
            self._line()


class AgentConnection:
    """Calls to the agent over one keep-alive connection (the subscription has its own)."""

    def __init__(self, endpoint: str, framework_id: str, executor_id: str,
                 token: str | None = None, env: Mapping[str, str] | None = None) -> None:
        self.endpoint = endpoint
        self.token = token
        # TLS to the agent as its environment says (the agent sets it); ssl is imported, and
        # the context built, only when it is on.
        env = os.environ if env is None else env
        self.context = tls.client_context(env) if tls.enabled(env) else None
        self.framework_id = framework_id
        self.executor_id = executor_id
        self._conn: HttpConnection | None = None

    def body(self, call_type: str, **fields: Json) -> bytes:
        call = {"type": call_type, "framework_id": {"value": self.framework_id},
                "executor_id": {"value": self.executor_id}, **fields}
        return json.dumps(call).encode()

    def post(self, call_type: str, **fields: Json) -> None:
        body = self.body(call_type, **fields)
        for attempt in range(2):  # a keep-alive connection the agent closed is retried once
            try:
                if self._conn is not None and self._conn.stale():
                    self._conn.close()
                    self._conn = None
                if self._conn is None:
                    self._conn = HttpConnection(self.endpoint, timeout=30, token=self.token,
                                                context=self.context)
                status, headers = self._conn.request(body)
                text = self._conn.body(headers)
            except (OSError, ValueError, IndexError):
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                if attempt:
                    raise
                continue
            if headers.get("connection", "").lower() == "close":
                self._conn.close()
                self._conn = None
            if status == 408 and not attempt:
                # The agent's header deadline ran out as the request went (an idle connection
                # closing, or a stalled agent): once more on a fresh one. Updates are
                # idempotent (the agent keeps each uuid once).
                continue
            if status != 202:
                raise RuntimeError(f"{call_type} answered {status}: {text!r}")
            return

    def subscribe(self, unacknowledged: list[Json],
                  tasks: list[Json] | None = None) -> HttpConnection:
        """SUBSCRIBE; after a reconnection it carries what the agent may not have got."""
        conn = HttpConnection(self.endpoint, timeout=None, token=self.token,
                              context=self.context)
        subscribe: dict[str, Json] = {
            "unacknowledged_updates": [{"status": status} for status in unacknowledged]}
        if tasks:
            subscribe["unacknowledged_tasks"] = tasks
        status, headers = conn.request(self.body("SUBSCRIBE", subscribe=subscribe),
                                       accept="application/json")
        if status != 200:
            raise RuntimeError(f"SUBSCRIBE answered {status}: {conn.body(headers)!r}")
        return conn


def read_events(stream: HttpConnection, events: queue.Queue[tuple[str, Json]]) -> None:
    """Decode RecordIO (``<length>\\n<json>``) from the subscription into ``events``."""
    buffer = b""
    try:
        for chunk in stream.chunks():
            buffer += chunk
            while True:
                newline = buffer.find(b"\n")
                if newline < 0:
                    break
                length = int(buffer[:newline])
                if len(buffer) < newline + 1 + length:
                    break
                record = buffer[newline + 1: newline + 1 + length]
                buffer = buffer[newline + 1 + length:]
                events.put(("event", json.loads(record)))
    except (OSError, ValueError, IndexError):
        pass
    events.put(("disconnected", None))
