"""Resource quantities: ``{name: thousandths}`` dicts, the currency of the allocator's books.

Shares, quota consumption, headroom and the minimum-allocatable test only need scalar amounts per
name, so the allocator keeps them as small integer dicts (the same numbers as
``Resources.scalars()``). Updating one costs a few hundred nanoseconds; the matching
``Resources`` arithmetic costs microseconds, and the offer cycle does it for every allocation.

Absent means zero, as Mesos's ``ResourceQuantities``; entries never hold zero or less.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

Quantities = dict[str, int]


def add_into(target: Quantities, amounts: Mapping[str, int]) -> None:
    for name, amount in amounts.items():
        target[name] = target.get(name, 0) + amount


def sub_into(target: Quantities, amounts: Mapping[str, int]) -> None:
    """Subtract, dropping what reaches zero (the books never go negative)."""
    for name, amount in amounts.items():
        left = target.get(name, 0) - amount
        if left > 0:
            target[name] = left
        else:
            target.pop(name, None)


def minus(left: Mapping[str, int], right: Mapping[str, int]) -> Quantities:
    """``left - right`` with only the positive entries (``ResourceQuantities::operator-``)."""
    out: Quantities = {}
    for name, amount in left.items():
        rest = amount - right.get(name, 0)
        if rest > 0:
            out[name] = rest
    return out


def plus(left: Mapping[str, int], right: Mapping[str, int]) -> Quantities:
    out = dict(left)
    add_into(out, right)
    return out


def dominant_share(held: Mapping[str, int], totals: Mapping[str, int]) -> float:
    """The largest ``held / total`` over the names in ``totals`` (the DRF dominant share).

    ``totals`` holds only names with a positive total that take part in fair sharing. Division
    (not multiplication by an inverse) keeps equal shares bit-identical, so ties are real ties.
    """
    best = 0.0
    for name, amount in held.items():
        total = totals.get(name)
        if total:
            share = amount / total
            if share > best:
                best = share
    return best


class MinAllocatable:
    """``--min_allocatable_resources``: an offer is worth making when it holds at least one of
    the alternatives in full (``cpus:0.01|mem:32`` means cpus >= 0.01 OR mem >= 32 MB)."""

    __slots__ = ("alternatives",)

    def __init__(self, alternatives: Sequence[Mapping[str, int]]) -> None:
        self.alternatives = [dict(a) for a in alternatives if a]

    def allows(self, amounts: Mapping[str, int], anything: bool) -> bool:
        """``anything``: the offer is non-empty (all that counts when no minimum is set)."""
        if not self.alternatives:
            return anything
        for alternative in self.alternatives:
            for name, amount in alternative.items():
                if amounts.get(name, 0) < amount:
                    break
            else:
                return True
        return False

    def fits_under(self, headroom: Mapping[str, int], names: Sequence[str]) -> bool:
        """Could an offer capped by ``headroom`` (absent = no cap) still be allocatable?

        ``names`` are the scalar names the cluster has; they matter only without a minimum.
        """
        if not self.alternatives:
            return any(headroom.get(name, 1) > 0 for name in names)
        for alternative in self.alternatives:
            for name, amount in alternative.items():
                if name in headroom and headroom[name] < amount:
                    break
            else:
                return True
        return False
