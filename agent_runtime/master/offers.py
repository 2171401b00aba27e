"""Offers in the master: made from what the allocator returns, sent, timed out, rescinded.

The allocator is pure (it decides); :class:`Offers` applies its decisions: each allocation
becomes an offer in the book and an OFFERS event, or goes straight back to the allocator when
its framework or agent is gone. Offers leave by ACCEPT/DECLINE (``take``), by ``rescind``
(timeout, an agent going away, a reservation needing room) or with their framework.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from agent_runtime.master.allocator import Allocation, Allocator
from agent_runtime.master.book import MasterBook
from agent_runtime.master.effects import MasterEffects
from agent_runtime.master.model import Agent, Offer
from agent_runtime.proto import mesos_pb2, scheduler_pb2


class Offers:
    def __init__(self, book: MasterBook, effects: MasterEffects, allocator: Allocator, *,
                 master_id: str, offer_timeout: float | None = None) -> None:
        self.book = book
        self.effects = effects
        self.allocator = allocator
        self.master_id = master_id
        self.offer_timeout = offer_timeout
        self._next_offer = 0
        # The agent's maintenance window, if any (set by master/maintenance.py).
        self.unavailability: Callable[[Agent], mesos_pb2.Unavailability | None] = (
            lambda agent: None)

    def allocate(self) -> None:
        """One allocation run: offers made from its result, one OFFERS event per framework."""
        started = time.perf_counter()
        allocations = self.allocator.allocate(self.effects.now())
        self.effects.count("allocator/mesos/allocation_runs")
        self.effects.gauge("allocator/mesos/allocation_run_ms",
                           int((time.perf_counter() - started) * 1000))
        by_framework: dict[str, list[Offer]] = {}
        for allocation in allocations:
            offer = self._make(allocation)
            if offer is not None:
                by_framework.setdefault(allocation.framework_id, []).append(offer)
        for framework_id, offers in by_framework.items():
            event = scheduler_pb2.Event(type=scheduler_pb2.Event.OFFERS)
            event.offers.offers.extend(o.proto for o in offers)
            self.effects.to_framework(self.book.frameworks[framework_id], event)

    def _make(self, allocation: Allocation) -> Offer | None:
        framework = self.book.frameworks.get(allocation.framework_id)
        agent = self.book.agents.get(allocation.agent_id)
        if framework is None or agent is None or not framework.connected:
            self.allocator.recover(allocation.framework_id, allocation.role, allocation.agent_id,
                                   allocation.resources, now=self.effects.now())
            return None
        offer_id = f"{self.master_id}-O{self._next_offer}"
        self._next_offer += 1
        proto = mesos_pb2.Offer(hostname=agent.info.hostname)
        proto.id.value = offer_id
        proto.framework_id.value = framework.id
        proto.agent_id.value = agent.id
        proto.allocation_info.role = allocation.role
        proto.resources.extend(allocation.resources.to_proto(allocation.role))
        proto.attributes.extend(agent.info.attributes)
        unavailability = self.unavailability(agent)
        if unavailability is not None:
            proto.unavailability.CopyFrom(unavailability)
        # As Mesos: the framework's executors running there, so a scheduler can tell an agent
        # where its executor already runs (and one an old incarnation of it left behind).
        for (agent_id, framework_id, executor_id) in self.book.executors:
            if agent_id == agent.id and framework_id == framework.id:
                proto.executor_ids.add(value=executor_id)
        proto.url.scheme = "http"
        proto.url.address.hostname = agent.info.hostname
        proto.url.address.ip = agent.pid.rpartition("@")[2].rpartition(":")[0]
        proto.url.address.port = agent.info.port
        proto.url.path = "/slave(1)"
        offer = Offer(proto, framework.id, agent.id, allocation.role, allocation.resources)
        if self.offer_timeout:
            offer.timer = self.effects.call_later(self.offer_timeout,
                                                  lambda: self.rescind(offer_id))
        self.book.add_offer(offer)
        return offer

    def take(self, offer_id: str) -> Offer | None:
        """Remove an offer (used or declined); its resources are the caller's to give back."""
        offer = self.book.pop_offer(offer_id)
        if offer is not None and offer.timer is not None:
            offer.timer.cancel()
        return offer

    def give_back(self, offer_id: str, *, refuse_seconds: float | None = None) -> Offer | None:
        """Remove an offer and return its resources to the allocator, telling no one."""
        offer = self.take(offer_id)
        if offer is not None:
            self.allocator.recover(offer.framework_id, offer.role, offer.agent_id,
                                   offer.resources, now=self.effects.now(),
                                   refuse_seconds=refuse_seconds)
        return offer

    def rescind(self, offer_id: str) -> None:
        """Withdraw an offer: its resources go back, its framework hears RESCIND."""
        offer = self.give_back(offer_id)
        if offer is None:
            return
        framework = self.book.frameworks.get(offer.framework_id)
        if framework is not None:
            event = scheduler_pb2.Event(type=scheduler_pb2.Event.RESCIND)
            event.rescind.offer_id.value = offer_id
            self.effects.to_framework(framework, event)
        # No allocation at once: the resources go out with the next batch, as in Mesos.

    def rescind_on(self, agent_id: str) -> None:
        """Rescind every outstanding offer of an agent's resources."""
        for offer in self.book.offers_on(agent_id):
            self.rescind(offer.proto.id.value)


__all__ = ["Offers"]
