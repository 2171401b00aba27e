"""Weighted DRF ordering.

A client's dominant share is the largest, over the scalar resources, of what it holds divided by
the cluster total; DRF serves the client with the smallest share divided by its weight first.
Ties break on the client's name so that a run is reproducible.
"""

from __future__ import annotations


class DRFSorter:
    """Keeps each client's allocation (in thousandths) and orders clients by weighted share."""

    __slots__ = ("_allocations", "_total", "_weights")

    def __init__(self) -> None:
        self._total: dict[str, int] = {}
        self._allocations: dict[str, dict[str, int]] = {}
        self._weights: dict[str, float] = {}

    def set_total(self, total: dict[str, int]) -> None:
        self._total = dict(total)

    def add(self, client: str, weight: float = 1.0) -> None:
        self._allocations.setdefault(client, {})
        self._weights[client] = weight

    def remove(self, client: str) -> None:
        self._allocations.pop(client, None)
        self._weights.pop(client, None)

    def __contains__(self, client: str) -> bool:
        return client in self._allocations

    def set_weight(self, client: str, weight: float) -> None:
        if client in self._weights:
            self._weights[client] = weight

    def allocated(self, client: str, quantities: dict[str, int]) -> None:
        held = self._allocations.setdefault(client, {})
        for name, amount in quantities.items():
            held[name] = held.get(name, 0) + amount

    def unallocated(self, client: str, quantities: dict[str, int]) -> None:
        held = self._allocations.get(client)
        if held is None:
            return
        for name, amount in quantities.items():
            left = held.get(name, 0) - amount
            if left > 0:
                held[name] = left
            else:
                held.pop(name, None)

    def share(self, client: str) -> float:
        held = self._allocations.get(client, {})
        best = 0.0
        for name, amount in held.items():
            total = self._total.get(name, 0)
            if total > 0:
                best = max(best, amount / total)
        return best / self._weights.get(client, 1.0)

    def sort(self) -> list[str]:
        return sorted(self._allocations, key=lambda c: (self.share(c), c))

    def allocation(self, client: str) -> dict[str, int]:
        return dict(self._allocations.get(client, {}))
