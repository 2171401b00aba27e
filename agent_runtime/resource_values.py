"""The value arithmetic under :mod:`agent_runtime.resources`: fixed-point scalars and port-style
ranges (sorted, disjoint, inclusive ``(begin, end)`` pairs)."""

from __future__ import annotations

import math
from collections.abc import Iterable

from agent_runtime.errors import BadRequest

Range = tuple[int, int]
Ranges = tuple[Range, ...]


def merge_ranges(ranges: Iterable[Range]) -> Ranges:
    out: list[list[int]] = []
    for begin, end in sorted(ranges):
        if out and begin <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([begin, end])
    return tuple((b, e) for b, e in out)


def subtract_ranges(left: Ranges, right: Ranges) -> Ranges:
    out: list[Range] = []
    for begin, end in left:
        pieces = [(begin, end)]
        for rb, re_ in right:
            next_pieces: list[Range] = []
            for pb, pe in pieces:
                if re_ < pb or rb > pe:
                    next_pieces.append((pb, pe))
                    continue
                if rb > pb:
                    next_pieces.append((pb, rb - 1))
                if re_ < pe:
                    next_pieces.append((re_ + 1, pe))
            pieces = next_pieces
        out.extend(pieces)
    return merge_ranges(out)


def ranges_contain(outer: Ranges, inner: Ranges) -> bool:
    return not subtract_ranges(inner, outer)


# Mesos keeps scalars as int64 thousandths; anything larger cannot be held (nor is a resource).
MAX_SCALAR = 1e15


def to_millis(value: float) -> int:
    """Mesos's ``convertToFixed``: ``llround(value * 1000)``, halves away from zero.
    BadRequest beyond +-``MAX_SCALAR`` (and for NaN), so no amount overflows."""
    if not abs(value) <= MAX_SCALAR:
        raise BadRequest(f"Scalar value {value!r} is out of range (at most {MAX_SCALAR:g})")
    millis = math.floor(abs(value) * 1000 + 0.5)
    return millis if value >= 0 else -millis
