"""The docker executor's log demultiplexer: the engine's 8-byte frame headers, split anywhere."""

from __future__ import annotations

import os

from executors.docker_executor import LogDemux


def frame(stream: int, payload: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


def test_frames_go_to_their_stream_even_when_split_across_reads() -> None:
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    data = frame(1, b"hello ") + frame(2, b"oops\n") + frame(1, b"world\n") + frame(1, b"")
    demux = LogDemux(out_w, err_w)
    for index in range(0, len(data), 3):  # 3-byte reads split headers and payloads
        demux.feed(data[index:index + 3])
    os.close(out_w)
    os.close(err_w)
    assert os.read(out_r, 100) == b"hello world\n"
    assert os.read(err_r, 100) == b"oops\n"
    assert demux.buffer == b""
    os.close(out_r)
    os.close(err_r)
