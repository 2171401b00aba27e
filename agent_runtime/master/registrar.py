"""Registry writes of many agent registrations made as one (group commit).

Every agent that registers for the first time (or comes back from unreachable) changes the
registry, and its registration is answered only once that change is durable. Written one by
one, 10,000 agents registering from cold would mean 10,000 rewrites of a document that grows to
megabytes. As Mesos's registrar applies all the operations that queued while one write was in
flight in the next write, :class:`GroupCommit` lets the registrations of one moment mark the
registry dirty (``deferred``) and wait for one write (``commit``) that covers them all.

Writes stay on the event loop, one at a time, so they never race the master's other (direct)
registry writes; between two writes the loop runs for at least three times as long as the last
write took (``WRITES_TO_WORK``), so registrations keep being served while a storm of them is
being committed. (At one to one, 10,000 agents registering from cold spent half the loop on
rewriting the registry, ~20 ms a write at that size.)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

MIN_WINDOW = 0.002  # seconds the loop runs between two group writes, at least
WRITES_TO_WORK = 3.0  # the loop runs this many times as long as the last write took, at least


@dataclass(slots=True)
class Deferred:
    """Whether anything asked for a registry write while saves were deferred."""

    requested: bool = False


class GroupCommit:
    def __init__(self, write: Callable[[], None]) -> None:
        self._write = write
        self._deferring: Deferred | None = None
        self._next: asyncio.Future[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._window = MIN_WINDOW

    @property
    def deferring(self) -> bool:
        return self._deferring is not None

    def request(self) -> None:
        """A save asked for while deferred: remembered, written by the next ``commit``."""
        assert self._deferring is not None
        self._deferring.requested = True

    @contextlib.contextmanager
    def deferred(self) -> Iterator[Deferred]:
        """Saves asked for inside are not written; the caller awaits :meth:`commit` after."""
        outer, self._deferring = self._deferring, Deferred()
        try:
            yield self._deferring
        finally:
            pending = self._deferring
            self._deferring = outer
            if outer is not None and pending.requested:
                outer.requested = True

    async def commit(self) -> None:
        """Return once a write that began after this call has finished; raise what it raised
        (every caller of that write hears the failure)."""
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        waiting = self._next
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._drain())
        await asyncio.shield(waiting)

    async def _drain(self) -> None:
        while self._next is not None:
            await asyncio.sleep(self._window)  # let the moment's registrations join this write
            batch, self._next = self._next, None
            started = time.monotonic()
            try:
                self._write()
            except Exception as exc:  # handed to every waiter of the batch
                batch.set_exception(exc)
                batch.exception()  # retrieved: waiters whose links went away hear nothing
            else:
                batch.set_result(None)
            self._window = max(MIN_WINDOW, WRITES_TO_WORK * (time.monotonic() - started))


__all__ = ["Deferred", "GroupCommit"]
