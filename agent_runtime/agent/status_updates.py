"""The status update manager: reliable, ordered delivery of task status updates.

One stream per task. Only the stream's first pending update is forwarded to the master; it is
re-sent with exponential backoff (10 s doubling up to 10 min, as Mesos) until the scheduler's
acknowledgement comes back, and only then is the next one forwarded. Updates are deduplicated by
uuid, so an executor that re-sends after a reconnect does no harm.

A change to a stream is checkpointed before anyone hears of it: the ``changed`` callback
returns the future of that checkpoint (None: nothing to wait for), and an update is forwarded
only once it is done, so an update the master has seen survives an agent crash.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from agent_runtime.proto import internal_pb2, mesos_pb2
from agent_runtime.task_states import TERMINAL_STATES

log = logging.getLogger(__name__)

RETRY_MIN = 10.0
RETRY_MAX = 600.0
MAX_SEEN = 64


@dataclass(slots=True)
class _Stream:
    framework_id: str
    pending: collections.deque[internal_pb2.StatusUpdate] = field(
        default_factory=collections.deque
    )
    seen: collections.deque[bytes] = field(
        default_factory=lambda: collections.deque(maxlen=MAX_SEEN))
    timer: asyncio.TimerHandle | None = None  # set while the head is out, until its ack
    backoff: float = RETRY_MIN
    checkpointing: asyncio.Future[None] | None = None  # the head waits for it to be sent


class StatusUpdateManager:
    def __init__(
        self,
        forward: Callable[[internal_pb2.StatusUpdate], None],
        retry_min: float = RETRY_MIN,
        retry_max: float = RETRY_MAX,
        changed: Callable[[str, str], asyncio.Future[None] | None] | None = None,
    ) -> None:
        self._forward = forward
        # Told (framework id, task id) after a stream changed: the agent checkpoints the stream
        # there and returns when that is on disk, so an accepted update survives a crash.
        self._changed = changed or (lambda framework_id, task_id: None)
        self._streams: dict[tuple[str, str], _Stream] = {}
        self._retry_min = retry_min
        self._retry_max = retry_max

    def duplicate(self, framework_id: str, status: mesos_pb2.TaskStatus) -> bool:
        """Whether an update of this uuid was taken already (an executor's retried UPDATE)."""
        stream = self._streams.get((framework_id, status.task_id.value))
        return bool(status.uuid) and stream is not None and status.uuid in stream.seen

    def update(self, framework_id: str, status: mesos_pb2.TaskStatus) -> bool:
        """Queue an update; False when it is a duplicate (same uuid) and was dropped."""
        key = (framework_id, status.task_id.value)
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = _Stream(framework_id, backoff=self._retry_min)
        if status.uuid and status.uuid in stream.seen:
            return False
        if status.uuid:
            stream.seen.append(status.uuid)
        update = internal_pb2.StatusUpdate()
        update.framework_id.value = framework_id
        update.status.CopyFrom(status)
        stream.pending.append(update)
        for queued in stream.pending:
            queued.latest_state = status.state
        checkpointed = self._changed(*key)
        if len(stream.pending) == 1:
            self._send_when(checkpointed, key, stream)
        return True

    def acknowledge(
        self, framework_id: str, task_id: str, uuid: bytes
    ) -> mesos_pb2.TaskStatus | None:
        """The scheduler acked ``uuid``; returns the acked status, or None if it was not ours."""
        key = (framework_id, task_id)
        stream = self._streams.get(key)
        if stream is None or not stream.pending or stream.pending[0].status.uuid != uuid:
            return None
        acked = stream.pending.popleft()
        if stream.timer is not None:
            stream.timer.cancel()
            stream.timer = None
        stream.backoff = self._retry_min
        checkpointed = self._changed(*key)
        if stream.pending:
            self._send_when(checkpointed, key, stream)
        elif acked.status.state in TERMINAL_STATES:
            del self._streams[key]
        return acked.status

    def snapshot(self, framework_id: str, task_id: str) -> internal_pb2.UpdateStream:
        """The stream as checkpointed: pending updates in order and the uuids seen."""
        stream = self._streams.get((framework_id, task_id))
        out = internal_pb2.UpdateStream()
        if stream is not None:
            out.pending.extend(stream.pending)
            out.seen.extend(stream.seen)
        return out

    def restore(self, framework_id: str, task_id: str,
                checkpoint: internal_pb2.UpdateStream) -> None:
        """Recovery: take a checkpointed stream back; it is sent on the next registration."""
        stream = self._streams[(framework_id, task_id)] = _Stream(
            framework_id, backoff=self._retry_min)
        stream.seen.extend(checkpoint.seen)
        stream.pending.extend(checkpoint.pending)

    def resend_all(self) -> None:
        """After (re)connecting to a master: forward every stream's head right away."""
        for key, stream in self._streams.items():
            if stream.checkpointing is not None and not stream.checkpointing.done():
                continue  # sent once on disk
            if stream.pending:
                if stream.timer is not None:
                    stream.timer.cancel()
                stream.backoff = self._retry_min
                self._send(key, stream)

    def pending(self, framework_id: str, task_id: str) -> list[mesos_pb2.TaskStatus]:
        stream = self._streams.get((framework_id, task_id))
        return [u.status for u in stream.pending] if stream else []

    def forget_framework(self, framework_id: str) -> None:
        for key in [k for k in self._streams if k[0] == framework_id]:
            timer = self._streams.pop(key).timer
            if timer is not None:
                timer.cancel()

    def _send_when(self, checkpointed: asyncio.Future[None] | None, key: tuple[str, str],
                   stream: _Stream) -> None:
        """Forward the stream's head once ``checkpointed`` is done, never before."""
        if checkpointed is None or (checkpointed.done() and not checkpointed.cancelled()
                                    and checkpointed.exception() is None):
            stream.checkpointing = None
            self._send(key, stream)
            return
        stream.checkpointing = checkpointed
        checkpointed.add_done_callback(lambda done: self._checkpointed(key, done))

    def _checkpointed(self, key: tuple[str, str], done: asyncio.Future[None]) -> None:
        stream = self._streams.get(key)
        if stream is None or stream.checkpointing is not done:
            return  # forgotten, restored, or already sent
        stream.checkpointing = None
        if done.cancelled() or done.exception() is not None:
            # Not on disk, so not forwarded here: it goes at the next registration
            # (resend_all); the writer logged why.
            return
        if stream.pending and stream.timer is None:
            self._send(key, stream)

    def _send(self, key: tuple[str, str], stream: _Stream) -> None:
        self._forward(stream.pending[0])
        delay = stream.backoff
        stream.backoff = min(stream.backoff * 2, self._retry_max)
        stream.timer = asyncio.get_running_loop().call_later(delay, self._retry, key)

    def _retry(self, key: tuple[str, str]) -> None:
        stream = self._streams.get(key)
        if stream is not None and stream.pending:
            self._send(key, stream)
