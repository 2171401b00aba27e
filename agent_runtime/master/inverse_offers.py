"""Inverse offers: the master asking frameworks to give an agent back for a maintenance window.

After each allocation run, every framework that runs something on an agent whose machine is
in a window (a live task or a custom executor) and is subscribed gets one
inverse offer for that agent (Event INVERSE_OFFERS, batched per framework), unless it already
has one outstanding there or answered within its filter. A framework answers with
ACCEPT_INVERSE_OFFERS or DECLINE_INVERSE_OFFERS: the answer is kept per agent as an
``InverseOfferStatus`` (GET_MAINTENANCE_STATUS shows it), the inverse offer goes, and
``filters.refuse_seconds`` (5 s by default, as any Filters) passes before that framework is asked
again about that agent. As in Mesos, an inverse offer covers the whole agent (no resources),
lives until ``--offer_timeout``, and is withdrawn (RESCIND_INVERSE_OFFER) when the agent's
window changes or ends, when the agent goes, or when the framework stops running anything
there; a change of window also forgets the answers and filters, so frameworks reconsider.
Unlike Mesos, a framework that only holds an offer there is not asked: that offer carries the
window as its ``unavailability`` already, and asking would come and go with every offer.

Answers naming inverse offers that are no longer outstanding (withdrawn meanwhile, or another
framework's) change nothing: a late answer is not an error, as with regular offers.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass

from agent_runtime.master.book import MasterBook
from agent_runtime.master.effects import MasterEffects
from agent_runtime.master.model import Agent, Framework, Timer
from agent_runtime.proto import maintenance_pb2, mesos_pb2, scheduler_pb2

log = logging.getLogger(__name__)

Status = maintenance_pb2.InverseOfferStatus
DEFAULT_REFUSE_SECONDS = 5.0
MAX_REFUSE_SECONDS = 365 * 24 * 3600.0  # as Mesos: a longer filter is cut to a year
Pair = tuple[str, str]  # (agent id, framework id)


@dataclass(slots=True)
class InverseOffer:
    proto: mesos_pb2.InverseOffer
    timer: Timer | None = None

    @property
    def pair(self) -> Pair:
        return (self.proto.agent_id.value, self.proto.framework_id.value)


class InverseOffers:
    def __init__(self, book: MasterBook, effects: MasterEffects, *, master_id: str,
                 offer_timeout: float | None) -> None:
        self.book = book
        self.effects = effects
        self.master_id = master_id
        self.offer_timeout = offer_timeout
        self.outstanding: dict[str, InverseOffer] = {}
        self._by_pair: dict[Pair, str] = {}
        self._statuses: dict[str, dict[str, maintenance_pb2.InverseOfferStatus]] = {}
        self._filtered_until: dict[Pair, float] = {}
        self._next = 0

    # Asking ----------------------------------------------------------------------------------
    def _holders(self, agent: Agent) -> set[str]:
        """The frameworks running something on the agent."""
        holders = {f.id for f, task in self.book.tasks_on(agent) if not task.terminal}
        return holders | self.book.frameworks_with_executors_on(agent.id)

    def run(self, windows: Iterable[tuple[Agent, mesos_pb2.Unavailability]]) -> None:
        """Ask every framework holding something on an agent in a window, once."""
        now = self.effects.now()
        windows = [(agent, u) for agent, u in windows if agent.connected]
        held: set[Pair] = set()
        batches: dict[str, list[mesos_pb2.InverseOffer]] = {}
        for agent, unavailability in windows:
            for framework_id in sorted(self._holders(agent)):
                pair = (agent.id, framework_id)
                framework = self.book.frameworks.get(framework_id)
                if framework is None or not framework.connected:
                    continue
                held.add(pair)
                if pair in self._by_pair or self._filtered_until.get(pair, 0.0) > now:
                    continue
                batches.setdefault(framework_id, []).append(
                    self._make(agent, framework, unavailability))
        # Outstanding ones whose agent left its window, or whose framework let go or left.
        for offer_id in [o for o, offer in self.outstanding.items() if offer.pair not in held]:
            self.rescind(offer_id)
        for framework_id, protos in batches.items():
            event = scheduler_pb2.Event(type=scheduler_pb2.Event.INVERSE_OFFERS)
            event.inverse_offers.inverse_offers.extend(protos)
            self.effects.to_framework(self.book.frameworks[framework_id], event)

    def _make(self, agent: Agent, framework: Framework,
              unavailability: mesos_pb2.Unavailability) -> mesos_pb2.InverseOffer:
        offer_id = f"{self.master_id}-IO{self._next}"
        self._next += 1
        proto = mesos_pb2.InverseOffer()
        proto.id.value = offer_id
        proto.framework_id.value = framework.id
        proto.agent_id.value = agent.id
        proto.unavailability.CopyFrom(unavailability)
        proto.url.scheme = "http"
        proto.url.address.hostname = agent.info.hostname
        proto.url.address.ip = agent.pid.rpartition("@")[2].rpartition(":")[0]
        proto.url.address.port = agent.info.port
        proto.url.path = "/slave(1)"
        offer = InverseOffer(proto)
        if self.offer_timeout:
            offer.timer = self.effects.call_later(self.offer_timeout,
                                                  lambda: self.rescind(offer_id))
        self.outstanding[offer_id] = offer
        self._by_pair[offer.pair] = offer_id
        return proto

    # Answers ---------------------------------------------------------------------------------
    def accept(self, framework: Framework,
               call: scheduler_pb2.Call.AcceptInverseOffers) -> None:
        self._answer(framework, call.inverse_offer_ids, call.filters
                     if call.HasField("filters") else None, Status.ACCEPT)

    def decline(self, framework: Framework,
                call: scheduler_pb2.Call.DeclineInverseOffers) -> None:
        self._answer(framework, call.inverse_offer_ids, call.filters
                     if call.HasField("filters") else None, Status.DECLINE)

    def _answer(self, framework: Framework, ids: Iterable[mesos_pb2.OfferID],
                filters: mesos_pb2.Filters | None, answer: Status.Status.ValueType) -> None:
        refuse = _refuse_seconds(filters)
        now = self.effects.now()
        for offer_id in ids:
            offer = self.outstanding.get(offer_id.value)
            if offer is None or offer.proto.framework_id.value != framework.id:
                log.info("framework %s answered inverse offer %r, which is not outstanding for "
                         "it; ignored", framework.id, offer_id.value[:200])
                continue
            self._remove(offer_id.value)
            agent_id = offer.proto.agent_id.value
            status = Status(status=answer, timestamp=mesos_pb2.TimeInfo(
                nanoseconds=int(now * 1e9)))
            status.framework_id.value = framework.id
            self._statuses.setdefault(agent_id, {})[framework.id] = status
            if refuse > 0:
                self._filtered_until[offer.pair] = now + refuse

    # Withdrawing -----------------------------------------------------------------------------
    def _remove(self, offer_id: str) -> InverseOffer | None:
        offer = self.outstanding.pop(offer_id, None)
        if offer is not None:
            self._by_pair.pop(offer.pair, None)
            if offer.timer is not None:
                offer.timer.cancel()
        return offer

    def rescind(self, offer_id: str) -> None:
        offer = self._remove(offer_id)
        if offer is None:
            return
        framework = self.book.frameworks.get(offer.proto.framework_id.value)
        if framework is not None and framework.connected:
            event = scheduler_pb2.Event(type=scheduler_pb2.Event.RESCIND_INVERSE_OFFER)
            event.rescind_inverse_offer.inverse_offer_id.value = offer_id
            self.effects.to_framework(framework, event)

    def reset(self, agent_id: str) -> None:
        """The agent's window changed or ended: withdraw, and forget answers and filters."""
        for offer_id in [o for o, offer in self.outstanding.items()
                         if offer.proto.agent_id.value == agent_id]:
            self.rescind(offer_id)
        self._statuses.pop(agent_id, None)
        for pair in [p for p in self._filtered_until if p[0] == agent_id]:
            del self._filtered_until[pair]

    # Views -----------------------------------------------------------------------------------
    def statuses_on(self, agent_ids: Iterable[str]) -> list[maintenance_pb2.InverseOfferStatus]:
        return [status for agent_id in agent_ids
                for _, status in sorted(self._statuses.get(agent_id, {}).items())]

    def of_framework(self, framework_id: str) -> list[mesos_pb2.InverseOffer]:
        return [offer.proto for offer in self.outstanding.values()
                if offer.proto.framework_id.value == framework_id]


def _refuse_seconds(filters: mesos_pb2.Filters | None) -> float:
    if filters is None or not filters.HasField("refuse_seconds"):
        return DEFAULT_REFUSE_SECONDS
    seconds = filters.refuse_seconds
    if math.isnan(seconds) or seconds <= 0:
        return 0.0  # no filter, as Mesos treats a non-positive one
    return min(seconds, MAX_REFUSE_SECONDS)


__all__ = ["DEFAULT_REFUSE_SECONDS", "InverseOffers"]
