"""Offers in the master: made from what the allocator returns, sent, timed out, rescinded.

The allocator is pure (it decides); :class:`Offers` applies its decisions: each allocation
becomes an offer in the book and an OFFERS event, or goes straight back to the allocator when
its framework or agent is gone. Offers leave by ACCEPT/DECLINE (``take``), by ``rescind``
(timeout, an agent going away, a reservation needing room) or with their framework.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from google.protobuf.internal.containers import RepeatedCompositeFieldContainer

from agent_runtime.master.allocator import Allocation, Allocator
from agent_runtime.master.book import MasterBook
from agent_runtime.master.effects import MasterEffects
from agent_runtime.master.model import Agent, Offer
from agent_runtime.proto import mesos_pb2, scheduler_pb2
from agent_runtime.resources import Resources


@dataclass(slots=True, eq=False)
class _KeptOffer:
    """An agent's encoded offer fields (see :meth:`Offers._encoded`) and what they were made
    from: the agent's record, info and pid, and the last resources offered and their role."""

    agent: Agent
    info: mesos_pb2.AgentInfo
    pid: str
    agent_wire: bytes
    resources: Resources | None = None
    role: str = ""
    wire: bytes = b""


class Offers:
    def __init__(self, book: MasterBook, effects: MasterEffects, allocator: Allocator, *,
                 master_id: str, offer_timeout: float | None = None) -> None:
        self.book = book
        self.effects = effects
        self.allocator = allocator
        self.master_id = master_id
        self.offer_timeout = offer_timeout
        self._next_offer = 0
        self._kept: dict[str, _KeptOffer] = {}
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
        if len(self._kept) > 2 * len(self.book.agents) + 1024:  # many agents gone since
            agents = self.book.agents
            self._kept = {a: kept for a, kept in self._kept.items() if a in agents}
        by_framework: dict[str, list[Allocation]] = {}
        for allocation in allocations:
            by_framework.setdefault(allocation.framework_id, []).append(allocation)
        for framework_id, mine in by_framework.items():
            # Each offer is made inside its framework's event (an offer keeps its proto there):
            # copying 10,000 offers into 100 events was a tenth of the master's CPU.
            event = scheduler_pb2.Event(type=scheduler_pb2.Event.OFFERS)
            made = [self._make(allocation, event.offers.offers) for allocation in mine]
            if any(offer is not None for offer in made):
                self.effects.to_framework(self.book.frameworks[framework_id], event)

    def _make(self, allocation: Allocation,
              into: RepeatedCompositeFieldContainer[mesos_pb2.Offer]) -> Offer | None:
        framework = self.book.frameworks.get(allocation.framework_id)
        agent = self.book.agents.get(allocation.agent_id)
        if framework is None or agent is None or not framework.connected:
            self.allocator.recover(allocation.framework_id, allocation.role, allocation.agent_id,
                                   allocation.resources, now=self.effects.now())
            return None
        offer_id = f"{self.master_id}-O{self._next_offer}"
        self._next_offer += 1
        # Parsed from kept encodings (C, one call) instead of set field by field: the agent's
        # part and the resources' part are each encoded once and reused until they change.
        proto = into.add()
        proto.MergeFromString(self._encoded(agent, allocation.resources, allocation.role))
        proto.id.value = offer_id
        proto.framework_id.value = framework.id
        proto.allocation_info.role = allocation.role
        unavailability = self.unavailability(agent)
        if unavailability is not None:
            proto.unavailability.CopyFrom(unavailability)
        # As Mesos: the framework's executors running there, so a scheduler can tell an agent
        # where its executor already runs (and one an old incarnation of it left behind).
        for (_, framework_id, executor_id) in self.book.executors_on(agent.id):
            if framework_id == framework.id:
                proto.executor_ids.add(value=executor_id)
        offer = Offer(proto, framework.id, agent.id, allocation.role, allocation.resources)
        if self.offer_timeout:
            offer.timer = self.effects.call_later(self.offer_timeout,
                                                  lambda: self.rescind(offer_id))
        self.book.add_offer(offer)
        return offer

    def _encoded(self, agent: Agent, resources: Resources, role: str) -> bytes:
        """The encoded fields of an offer that its agent and resources decide, kept per agent:
        remade when the agent registers again (a new record or info) or what it offers
        changes, which in a steady cluster is seldom (declined offers come back alike)."""
        kept = self._kept.get(agent.id)
        if kept is None or kept.agent is not agent or kept.info is not agent.info \
                or kept.pid != agent.pid:
            kept = self._kept[agent.id] = _KeptOffer(agent, agent.info, agent.pid,
                                                     _agent_fields(agent))
        if kept.role != role or kept.resources != resources:
            proto = mesos_pb2.Offer()
            proto.resources.extend(resources.to_proto(role))
            kept.resources, kept.role = resources, role
            kept.wire = kept.agent_wire + proto.SerializeToString()
        return kept.wire

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


def _agent_fields(agent: Agent) -> bytes:
    """An offer's fields that only its agent decides: hostname, agent id, attributes, URL."""
    proto = mesos_pb2.Offer(hostname=agent.info.hostname)
    proto.agent_id.value = agent.id
    proto.attributes.extend(agent.info.attributes)
    proto.url.scheme = "http"
    proto.url.address.hostname = agent.info.hostname
    proto.url.address.ip = agent.pid.rpartition("@")[2].rpartition(":")[0]
    proto.url.address.port = agent.info.port
    proto.url.path = "/slave(1)"
    return proto.SerializeToString()


__all__ = ["Offers"]
