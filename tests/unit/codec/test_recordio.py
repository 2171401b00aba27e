"""RecordIO framing as ``docs/recordio.md`` defines it: ``<decimal byte length>\\n<bytes>``."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_runtime.codec import recordio
from agent_runtime.errors import BadRequest

HEARTBEAT = b'{"type":"HEARTBEAT"}'
# Record payloads that would trip a line-based reader: newlines, digits after a newline.
RECORDS = [
    b'{"type":"SUBSCRIBED","subscribed":{"framework_id":{"value":"m-0000"}}}',
    HEARTBEAT,
    b"12\n34",
    b"\n",
    "caf\u00e9 \u2603".encode(),
    bytes(range(256)),
]
STREAM = b"".join(recordio.encode(r) for r in RECORDS)


def test_encode_matches_the_documented_example() -> None:
    # docs/recordio.md: `20\n{"type":"HEARTBEAT"}`, with no separator after the data.
    assert recordio.encode(HEARTBEAT) == b'20\n{"type":"HEARTBEAT"}'


def test_the_length_counts_bytes_not_characters() -> None:
    record = "\u00e9\u00e9".encode()  # two characters, four bytes
    assert recordio.encode(record) == b"4\n" + record


def test_a_whole_stream_decodes_in_one_feed() -> None:
    assert recordio.Decoder().feed(STREAM) == RECORDS


def test_records_follow_each_other_with_no_separator() -> None:
    assert recordio.Decoder().feed(b"3\nabc3\ndef") == [b"abc", b"def"]


@pytest.mark.parametrize("split", range(len(STREAM) + 1))
def test_a_stream_split_at_any_offset_gives_the_same_records(split: int) -> None:
    decoder = recordio.Decoder()
    records = decoder.feed(STREAM[:split]) + decoder.feed(STREAM[split:])
    assert records == RECORDS


def test_a_stream_fed_one_byte_at_a_time_gives_the_same_records() -> None:
    decoder = recordio.Decoder()
    records: list[bytes] = []
    for i in range(len(STREAM)):
        records += decoder.feed(STREAM[i:i + 1])
    assert records == RECORDS


def test_an_incomplete_record_is_held_back_until_it_is_complete() -> None:
    decoder = recordio.Decoder()
    assert decoder.feed(b"20\n" + HEARTBEAT[:-1]) == []
    assert decoder.feed(HEARTBEAT[-1:]) == [HEARTBEAT]
    assert decoder.feed(b"") == []


@pytest.mark.parametrize(
    "data",
    [b"abc\n", b"-1\n", b"1a\n", b"0x10\n", b"\n", b"+5\n", b"1.5\n", b"\xd9\xa3\n"],
)
def test_a_malformed_length_is_rejected(data: bytes) -> None:
    with pytest.raises(BadRequest, match="RecordIO"):
        recordio.Decoder().feed(data + b"xxxxxxxxxx")


def test_a_malformed_length_after_a_good_record_is_rejected() -> None:
    decoder = recordio.Decoder()
    with pytest.raises(BadRequest, match="RecordIO"):
        decoder.feed(recordio.encode(HEARTBEAT) + b"oops\n{}")


def test_a_length_line_that_never_ends_is_rejected_early() -> None:
    # A uint64 has at most 20 digits: the decoder must not buffer a size line forever.
    decoder = recordio.Decoder()
    with pytest.raises(BadRequest, match="too long"):
        for _ in range(100):
            decoder.feed(b"1111111")


def test_a_record_over_the_limit_is_rejected_before_it_is_buffered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(recordio, "MAX_RECORD", 1000)
    decoder = recordio.Decoder()
    with pytest.raises(BadRequest, match="too large"):
        decoder.feed(b"1001\n")  # refused from the size line alone, no data needed


def test_a_record_at_the_limit_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recordio, "MAX_RECORD", 1000)
    record = b"x" * 1000
    assert recordio.Decoder().feed(recordio.encode(record)) == [record]


@settings(max_examples=200, deadline=None)
@given(
    records=st.lists(st.binary(min_size=1, max_size=64), max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=1000), max_size=10),
)
def test_any_records_in_any_chunks_round_trip(records: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(recordio.encode(r) for r in records)
    points = sorted({min(c, len(stream)) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    decoder = recordio.Decoder()
    decoded: list[bytes] = []
    for chunk in chunks:
        decoded += decoder.feed(chunk)
    assert decoded == records
