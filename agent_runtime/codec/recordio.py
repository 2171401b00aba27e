"""RecordIO framing of Mesos's event streams: ``<decimal length>\\n<bytes>``, repeated.

Chunk boundaries of the HTTP transport carry no meaning, so the decoder buffers bytes and emits
whole records only.
"""

from agent_runtime.errors import BadRequest

MAX_RECORD = 64 * 1024 * 1024


def encode(record: bytes) -> bytes:
    return b"%d\n%s" % (len(record), record)


class Decoder:
    """Incremental decoder: ``feed`` bytes as they arrive, get back the completed records."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._need: int | None = None

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        records: list[bytes] = []
        while True:
            if self._need is None:
                newline = self._buffer.find(b"\n")
                if newline < 0:
                    if len(self._buffer) > 20:
                        raise BadRequest("RecordIO: record size line too long")
                    return records
                size_text = bytes(self._buffer[:newline]).strip()
                if not size_text.isdigit():
                    raise BadRequest(f"RecordIO: invalid record size {size_text!r}")
                self._need = int(size_text)
                if self._need > MAX_RECORD:
                    raise BadRequest(f"RecordIO: record of {self._need} bytes is too large")
                del self._buffer[: newline + 1]
            if len(self._buffer) < self._need:
                return records
            records.append(bytes(self._buffer[: self._need]))
            del self._buffer[: self._need]
            self._need = None
