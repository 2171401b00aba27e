"""Offers in, verdicts out: the offer store and the node registry working as one cache.

The framework hands every OFFERS event here; what comes back is the list to DECLINE (offers
that broke a rule of :mod:`agent_runtime.scheduler.nodes`, and the cached offers of a node
that changed). Declines are counted by reason, so an operator can see why offers were refused.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from dataclasses import dataclass, field

from agent_runtime.proto import mesos_pb2
from agent_runtime.scheduler.nodes import NodeRegistry, Verdict
from agent_runtime.scheduler.offers import CachedOffer, OfferStore


@dataclass
class OfferCache:
    store: OfferStore = field(default_factory=OfferStore)
    nodes: NodeRegistry = field(default_factory=NodeRegistry)
    declined: collections.Counter[Verdict] = field(default_factory=collections.Counter)

    def receive(self, offers: Iterable[mesos_pb2.Offer | CachedOffer]) -> list[CachedOffer]:
        """Cache the valid offers; return those to decline."""
        refused: list[CachedOffer] = []
        for offer in offers:
            cached = offer if isinstance(offer, CachedOffer) else CachedOffer.from_proto(offer)
            verdict = self.nodes.check(cached)
            if verdict is Verdict.VALID:
                self.store.add(cached)
                continue
            if verdict is Verdict.NODE_CHANGED:
                refused.extend(self.store.invalidate_node(cached.hostname))
            self.declined[verdict] += 1
            refused.append(cached)
        return refused

    def rescind(self, offer_id: str) -> bool:
        return self.store.rescind(offer_id)

    def expire(self) -> list[CachedOffer]:
        return self.store.expire()

    def agent_lost(self, agent_id: str) -> list[CachedOffer]:
        """An agent failed: its node goes, with whatever offers of it are still cached."""
        gone: list[CachedOffer] = []
        for name in [n.name for n in self.nodes.nodes.values() if n.agent_id == agent_id]:
            gone.extend(self.store.invalidate_node(name))
            self.nodes.remove(name)
        return gone


__all__ = ["OfferCache"]
