"""What keeps a daemon's HTTP server up against clients that hold it open: at most
``--max_http_connections`` connections (more are answered 503 and closed), and a request's
headers must arrive within ``--http_header_timeout`` of the connection opening (a slow or
silent client is answered 408 and closed) or of the previous response (an idle keep-alive
connection is closed without a word: a 408 written there would be read by the client as the
answer to the next request it sends, which is how executors quiet for longer than the timeout
lost their next status update). Refusals are logged once per
``LOG_EVERY`` seconds with a count, so a flood cannot fill the disk.

aiohttp has neither limit, so :meth:`ConnectionGuard.install` wraps the server's connection
hooks, and :meth:`ConnectionGuard.middleware` tells when a request's headers have arrived (the
clock stops) and when its response is done (it starts again).
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger(__name__)
LOG_EVERY = 10.0
BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
        b"Content-Length: 30\r\nConnection: close\r\n\r\nToo many open HTTP connections")
SLOW = (b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\n"
        b"Content-Length: 33\r\nConnection: close\r\n\r\nRequest headers did not arrive...")
# Descriptors beyond the HTTP connections: the agent link, the registry, logs, executors.
SPARE_FDS = 1024


@dataclass(frozen=True)
class HttpLimits:
    max_connections: int
    header_timeout: float


class ConnectionGuard:
    def __init__(self, limits: HttpLimits) -> None:
        self.limits = limits
        self.open = 0
        self._transports: dict[RequestHandler, asyncio.Transport] = {}
        self._deadlines: dict[RequestHandler, asyncio.TimerHandle] = {}
        self._refused = {"busy": 0, "slow": 0}
        self._logged = 0.0

    def install(self, server: web.Server) -> None:
        raise_fd_limit(self.limits.max_connections + SPARE_FDS)
        made, lost = server.connection_made, server.connection_lost

        def connection_made(handler: RequestHandler, transport: asyncio.Transport) -> None:
            made(handler, transport)
            self.open += 1
            self._transports[handler] = transport
            if self.open > self.limits.max_connections:
                transport.write(BUSY)
                transport.close()
                self._count("busy")
                return
            self._arm(handler, idle=False)

        def connection_lost(handler: RequestHandler, exc: BaseException | None = None) -> None:
            self.open -= 1
            self._transports.pop(handler, None)
            self._disarm(handler)
            lost(handler, exc)

        # aiohttp's server offers these two hooks and no other way in.
        server.connection_made = connection_made  # type: ignore[method-assign]
        server.connection_lost = connection_lost  # type: ignore[method-assign]

    def _arm(self, handler: RequestHandler, idle: bool) -> None:
        self._disarm(handler)
        loop = asyncio.get_running_loop()
        self._deadlines[handler] = loop.call_later(self.limits.header_timeout, self._expire,
                                                   handler, idle)

    def _disarm(self, handler: RequestHandler) -> None:
        deadline = self._deadlines.pop(handler, None)
        if deadline is not None:
            deadline.cancel()

    def _expire(self, handler: RequestHandler, idle: bool) -> None:
        self._deadlines.pop(handler, None)
        transport = self._transports.get(handler)
        if transport is None or transport.is_closing():
            return
        if not idle:
            transport.write(SLOW)
            self._count("slow")
        transport.close()

    def _count(self, why: str) -> None:
        self._refused[why] += 1
        now = time.monotonic()
        if now - self._logged >= LOG_EVERY:
            self._logged = now
            log.warning("HTTP connections refused since the last report: %d over the limit "
                        "of %d, %d without headers in %gs", self._refused["busy"],
                        self.limits.max_connections, self._refused["slow"],
                        self.limits.header_timeout)
            self._refused = {"busy": 0, "slow": 0}

    def middleware(self) -> Middleware:
        @web.middleware
        async def headers_arrived(request: web.Request, handler: Handler
                                  ) -> web.StreamResponse:
            protocol = request.protocol
            if not isinstance(protocol, RequestHandler):
                return await handler(request)
            self._disarm(protocol)
            try:
                return await handler(request)
            finally:
                if protocol in self._transports:
                    self._arm(protocol, idle=True)  # the next request on this connection

        return headers_arrived


def raise_fd_limit(wanted: int) -> None:
    """Raise the soft descriptor limit towards ``wanted`` (the hard limit at most), so the
    connection limit, not the descriptor table, is what a flood meets first."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
