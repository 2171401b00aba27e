"""A RecordIO event stream over a chunked HTTP response (scheduler and executor APIs)."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from google.protobuf.message import Message

from agent_runtime.codec import recordio
from agent_runtime.http_util import encode

log = logging.getLogger(__name__)


class EventStream:
    """Events are queued by ``send`` (never blocking the caller) and written by ``pump``."""

    def __init__(self, response: web.StreamResponse, media: str, stream_id: str) -> None:
        self.response = response
        self.media = media
        self.stream_id = stream_id
        self.closed = asyncio.Event()
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    def send(self, event: Message) -> None:
        if not self.closed.is_set():
            self._queue.put_nowait(recordio.encode(encode(event, self.media)))

    def close(self) -> None:
        self._queue.put_nowait(None)

    async def pump(self) -> None:
        """Write queued events until closed or the client goes away; batches what is queued."""
        try:
            while True:
                record = await self._queue.get()
                if record is None:
                    break
                chunks = [record]
                while not self._queue.empty():
                    more = self._queue.get_nowait()
                    if more is None:
                        self._queue.put_nowait(None)
                        break
                    chunks.append(more)
                await self.response.write(b"".join(chunks))
        except (ConnectionError, RuntimeError) as exc:
            log.info("event stream %s closed: %s", self.stream_id, exc)
        finally:
            self.closed.set()
