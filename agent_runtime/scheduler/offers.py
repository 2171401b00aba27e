"""The scheduler side's offer cache: offers kept while valid, then handed back.

A framework that places work as it arrives (seed 002's pod scheduler) cannot answer every offer
at once, nor keep one forever (the master would hold those resources from everyone else). So
offers wait here for a time-to-live (5 s by default, as k8sm's ``--offer-ttl``), in arrival
order, which is what first-come-first-served placement walks. An offer leaves:

- taken: a placement claimed it (``acquire``) and the launch went out (``take``);
- expired: its TTL passed while unclaimed; ``expire`` returns it for the caller to DECLINE;
- rescinded: the master withdrew it (``rescind``); a claim on it then fails;
- invalidated: its node changed (``invalidate_node``); returned for the caller to DECLINE.

Expiry is a delayed queue (a heap of deadlines) rather than a scan of every offer, and an
expired or rescinded id lingers a while (``linger``) so that a late RESCIND or a late claim is
recognised as stale instead of unknown. The store is synchronous and reads time from the clock
it is given: the driver's loop calls ``expire``, tests move a fake clock.

Every offer is parsed once into :class:`CachedOffer` (cpus and memory in milli units, the port
ranges, the attributes as text), so placement never touches protobufs.
"""

from __future__ import annotations

import enum
import heapq
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from agent_runtime.proto import mesos_pb2

DEFAULT_TTL = 5.0
DEFAULT_LINGER = 120.0
Clock = Callable[[], float]


def _millis(value: float) -> int:
    # A NaN or infinite quantity in an offer counts as none rather than crashing the loop.
    return round(value * 1000) if math.isfinite(value) else 0


def attribute_text(attribute: mesos_pb2.Attribute) -> str:
    """An agent attribute's value as text, as node labels and selectors compare it."""
    kind = attribute.type
    if kind == mesos_pb2.Value.SCALAR or attribute.HasField("scalar"):
        return f"{attribute.scalar.value:g}"
    if kind == mesos_pb2.Value.RANGES or attribute.HasField("ranges"):
        return ",".join(f"[{r.begin}-{r.end}]" for r in attribute.ranges.range)
    if kind == mesos_pb2.Value.SET or attribute.HasField("set"):
        return ",".join(sorted(attribute.set.item))
    return attribute.text.value


@dataclass(slots=True)
class CachedOffer:
    """What placement needs of one offer."""

    id: str
    agent_id: str
    hostname: str
    cpus: int  # milli cpus
    mem: int  # milli megabytes
    ports: tuple[tuple[int, int], ...]
    attributes: dict[str, str]
    executor_ids: frozenset[str]
    proto: mesos_pb2.Offer | None = None

    @classmethod
    def from_proto(cls, offer: mesos_pb2.Offer) -> CachedOffer:
        cpus = mem = 0
        ports: list[tuple[int, int]] = []
        for resource in offer.resources:
            if resource.name == "cpus":
                cpus += _millis(resource.scalar.value)
            elif resource.name == "mem":
                mem += _millis(resource.scalar.value)
            elif resource.name == "ports":
                ports.extend((r.begin, r.end) for r in resource.ranges.range)
        return cls(
            id=offer.id.value, agent_id=offer.agent_id.value, hostname=offer.hostname,
            cpus=cpus, mem=mem, ports=tuple(sorted(ports)),
            attributes={a.name: attribute_text(a) for a in offer.attributes},
            executor_ids=frozenset(e.value for e in offer.executor_ids), proto=offer,
        )


class OfferState(enum.Enum):
    LIVE = "live"  # cached, free to claim
    ACQUIRED = "acquired"  # claimed by a placement; the claimant takes or releases it
    EXPIRED = "expired"  # TTL passed unclaimed; declined, lingering
    RESCINDED = "rescinded"  # withdrawn by the master, lingering


@dataclass(slots=True)
class _Entry:
    offer: CachedOffer
    deadline: float
    state: OfferState = OfferState.LIVE
    linger_until: float = 0.0


@dataclass
class OfferStore:
    clock: Clock = time.monotonic
    ttl: float = DEFAULT_TTL
    linger: float = DEFAULT_LINGER
    # Insertion-ordered: iteration is arrival order, which is what FCFS walks.
    _entries: dict[str, _Entry] = field(default_factory=dict)
    _by_host: dict[str, set[str]] = field(default_factory=dict)
    _delayed: list[tuple[float, int, str]] = field(default_factory=list)
    _sequence: int = 0

    # Arrivals and departures -------------------------------------------------------------
    def add(self, offer: CachedOffer) -> None:
        now = self.clock()
        if offer.id in self._entries:
            return  # a duplicate delivery changes nothing (and must not extend the TTL)
        self._entries[offer.id] = _Entry(offer, now + self.ttl)
        self._by_host.setdefault(offer.hostname, set()).add(offer.id)
        self._push(now + self.ttl, offer.id)

    def acquire(self, offer_id: str) -> CachedOffer | None:
        """Claim a live offer for a launch; None when it expired, was rescinded or is unknown."""
        entry = self._entries.get(offer_id)
        if entry is None or entry.state is not OfferState.LIVE:
            return None
        if entry.deadline <= self.clock():
            self._retire(entry, OfferState.EXPIRED)
            return None
        entry.state = OfferState.ACQUIRED
        return entry.offer

    def release(self, offer_id: str) -> None:
        """A claim given up without a launch: the offer is live again until its deadline."""
        entry = self._entries.get(offer_id)
        if entry is not None and entry.state is OfferState.ACQUIRED:
            entry.state = OfferState.LIVE

    def take(self, offer_id: str) -> CachedOffer | None:
        """The offer was used (ACCEPT) or declined: forget it."""
        entry = self._entries.pop(offer_id, None)
        if entry is None:
            return None
        self._unindex(entry.offer)
        return entry.offer if entry.state in (OfferState.LIVE, OfferState.ACQUIRED) else None

    def rescind(self, offer_id: str) -> bool:
        """The master withdrew it; True when it was live or claimed here."""
        entry = self._entries.get(offer_id)
        if entry is None or entry.state not in (OfferState.LIVE, OfferState.ACQUIRED):
            return False
        self._retire(entry, OfferState.RESCINDED)
        return True

    def invalidate_node(self, hostname: str) -> list[CachedOffer]:
        """Drop a node's unclaimed offers (its attributes changed, or it is no worker any
        more); they are returned for the caller to decline."""
        dropped = []
        for offer_id in sorted(self._by_host.get(hostname, ())):
            entry = self._entries[offer_id]
            if entry.state is OfferState.LIVE:
                self._retire(entry, OfferState.EXPIRED)
                dropped.append(entry.offer)
        return dropped

    def expire(self) -> list[CachedOffer]:
        """Pop every deadline that passed: unclaimed offers past their TTL are returned (to be
        declined), lingering ids past their linger are forgotten."""
        now = self.clock()
        declined = []
        while self._delayed and self._delayed[0][0] <= now:
            _, _, offer_id = heapq.heappop(self._delayed)
            entry = self._entries.get(offer_id)
            if entry is None:
                continue
            if entry.state is OfferState.LIVE and entry.deadline <= now:
                self._retire(entry, OfferState.EXPIRED)
                declined.append(entry.offer)
            elif entry.state in (OfferState.EXPIRED, OfferState.RESCINDED) \
                    and entry.linger_until <= now:
                del self._entries[offer_id]
        return declined

    # Queries ---------------------------------------------------------------------------------
    def live(self) -> Iterator[CachedOffer]:
        """Unclaimed offers within their TTL, in arrival order."""
        now = self.clock()
        for entry in self._entries.values():
            if entry.state is OfferState.LIVE and entry.deadline > now:
                yield entry.offer

    def state(self, offer_id: str) -> OfferState | None:
        entry = self._entries.get(offer_id)
        return entry.state if entry is not None else None

    def on_host(self, hostname: str) -> list[CachedOffer]:
        return [self._entries[o].offer for o in sorted(self._by_host.get(hostname, ()))
                if self._entries[o].state is OfferState.LIVE]

    def __len__(self) -> int:
        return sum(1 for e in self._entries.values() if e.state is OfferState.LIVE)

    # Internals -------------------------------------------------------------------------------
    def _push(self, deadline: float, offer_id: str) -> None:
        self._sequence += 1
        heapq.heappush(self._delayed, (deadline, self._sequence, offer_id))

    def _retire(self, entry: _Entry, state: OfferState) -> None:
        entry.state = state
        entry.linger_until = self.clock() + self.linger
        self._unindex(entry.offer)
        self._push(entry.linger_until, entry.offer.id)

    def _unindex(self, offer: CachedOffer) -> None:
        ids = self._by_host.get(offer.hostname)
        if ids is not None:
            ids.discard(offer.id)
            if not ids:
                del self._by_host[offer.hostname]


__all__ = ["DEFAULT_TTL", "CachedOffer", "OfferState", "OfferStore", "attribute_text"]
