"""Agents in the master: registration, re-registration, lost links, unreachable, removed.

:class:`AgentLifecycle` moves agents through the table in :mod:`agent_runtime.master.lifecycle`
(REGISTERED, DISCONNECTED, UNREACHABLE, REMOVED), keeps the registry's record of admitted and
unreachable agents, and hands what each move means for tasks to
:class:`~agent_runtime.master.agent_tasks.AgentTasks`. Agents the registry admitted but that have
not re-registered with this master yet are *recovered* until ``--agent_reregister_timeout``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from agent_runtime.errors import Forbidden
from agent_runtime.master.agent_tasks import AgentTasks
from agent_runtime.master.allocator import Allocator
from agent_runtime.master.book import MasterBook
from agent_runtime.master.effects import MasterEffects, agent_failure
from agent_runtime.master.lifecycle import AgentState
from agent_runtime.master.model import Agent, Timer
from agent_runtime.master.offers import Offers
from agent_runtime.master.reservations import Reservations
from agent_runtime.proto import internal_pb2, mesos_pb2
from agent_runtime.resources import Resources

log = logging.getLogger(__name__)
Outbox = asyncio.Queue[internal_pb2.MasterMessage | None]


class AgentRemoved(Forbidden):
    """An agent id the master removed for good (marked gone) tried to register again: it is
    told to shut down (Mesos's ShutdownMessage), not merely refused."""


class AgentLifecycle:
    def __init__(self, book: MasterBook, effects: MasterEffects, allocator: Allocator, *,
                 offers: Offers, reservations: Reservations, agent_tasks: AgentTasks,
                 master_id: str, link_grace: float, reregister_timeout: float) -> None:
        self.book = book
        self.effects = effects
        self.allocator = allocator
        self.offers = offers
        self.reservations = reservations
        self.agent_tasks = agent_tasks
        self.master_id = master_id
        # How long a link may stay down before the agent is unreachable: as long as the missed
        # pings would take (--agent_ping_timeout times --max_agent_ping_timeouts).
        self.link_grace = link_grace
        self.reregister_timeout = reregister_timeout
        self._next_agent = 0
        self._recovered_timer: Timer | None = None
        # The operator's say (master/maintenance.py, master/agent_gone.py): whether an agent's
        # resources may be offered (a deactivated one stays so when it registers again), and
        # why an agent id may not register at all (marked gone), or None.
        self.offerable: Callable[[Agent], bool] = lambda agent: True
        self.refusal: Callable[[str], str | None] = lambda agent_id: None

    # Recovery --------------------------------------------------------------------------------
    def await_recovered(self) -> None:
        """After the registry is recovered: its admitted, reachable agents that have not
        re-registered yet are waited for, then marked unreachable."""
        registry = self.book.registry
        self.book.recovered_agents = {
            agent_id: info for agent_id, info in registry.agents.items()
            if agent_id not in self.book.agents and agent_id not in registry.unreachable
        }
        if self.book.recovered_agents:
            log.info("%d agents recovered from the registry; waiting %gs for them to re-register",
                     len(self.book.recovered_agents), self.reregister_timeout)
            self._recovered_timer = self.effects.call_later(self.reregister_timeout,
                                                            self._recovered_timeout)

    def _recovered_timeout(self) -> None:
        """As Mesos's ``recoveredSlavesTimeout``: the recovered agents that did not re-register
        in time are marked unreachable in the registry."""
        self._recovered_timer = None
        late, self.book.recovered_agents = self.book.recovered_agents, {}
        if not late:
            return
        now = self.effects.now()
        for agent_id in late:
            log.warning("agent %s did not re-register within %gs; marking it unreachable",
                        agent_id, self.reregister_timeout)
            self.book.registry.unreachable[agent_id] = now
        self._save_registry("mark recovered agents unreachable")
        self.effects.count("master/slave_unreachable_completed", len(late))
        for agent_id in late:
            self.effects.broadcast(agent_failure(agent_id))

    def stop(self) -> None:
        if self._recovered_timer is not None:
            self._recovered_timer.cancel()
        for agent in self.book.agents.values():
            agent.outbox.put_nowait(None)

    def _save_registry(self, what: str) -> None:
        """Registry writes the master cannot refuse to make (timers), batched with others: a
        failure is logged; with ZooKeeper it means another master leads, and the contender is
        about to stop this one."""
        self.effects.save_registry_later(what)

    def _admit(self, declared: mesos_pb2.AgentInfo, agent_id: str) -> None:
        """Record an agent as admitted and reachable (Mesos's AdmitSlave / MarkSlaveReachable),
        with the AgentInfo it declared (dynamic reservations have their own registry entry).
        Written before the master acts on the registration, so a failed write refuses it."""
        registry = self.book.registry
        self.book.recovered_agents.pop(agent_id, None)
        stored = mesos_pb2.AgentInfo()
        stored.CopyFrom(declared)
        stored.id.value = agent_id
        if registry.agents.get(agent_id) == stored and agent_id not in registry.unreachable:
            return
        registry.agents[agent_id] = stored
        registry.unreachable.pop(agent_id, None)
        self.effects.save_registry()

    # Registration ----------------------------------------------------------------------------
    def register(self, register: internal_pb2.RegisterAgent, outbox: Outbox) -> Agent:
        info = mesos_pb2.AgentInfo()
        info.CopyFrom(register.agent_info)
        total = Resources.from_proto(info.resources)
        agent_id = info.id.value if info.HasField("id") else ""
        refused = self.refusal(agent_id) if agent_id else None
        if refused is not None:
            raise AgentRemoved(refused)
        existing = self.book.agents.get(agent_id) if agent_id else None
        if agent_id:
            total = self.reservations.apply_registered(agent_id, total)
            info.ClearField("resources")
            info.resources.extend(total.to_proto())
        if not agent_id:
            agent_id = f"{self.master_id}-S{self._next_agent}"
            self._next_agent += 1
            info.id.value = agent_id
        self._admit(register.agent_info, agent_id)
        if existing is not None:
            self._reregister(existing, register, info, total, outbox)
            return existing
        agent = Agent(
            agent_id, info, register.pid, total, registered_time=self.effects.now(),
            outbox=outbox, version=register.version,
            capabilities=[c.type for c in register.capabilities],
        )
        if register.agent_info.HasField("id"):
            agent.reregistered_time = agent.registered_time
        self.book.agents[agent_id] = agent
        self.allocator.add_agent(agent_id, total)
        if not self.offerable(agent):
            self.allocator.deactivate_agent(agent_id)
        for executor in register.executors:
            self.agent_tasks.recover_executor(agent, executor)
        log.info("agent %s registered at %s with %s", agent_id, register.pid, total.text())
        self.effects.allocate_soon()
        return agent

    def _reregister(self, agent: Agent, register: internal_pb2.RegisterAgent,
                    info: mesos_pb2.AgentInfo, total: Resources, outbox: Outbox) -> None:
        """An agent this master knows comes back (a new link, or after being unreachable)."""
        if agent.total != total:
            agent.total = total
            self.allocator.update_agent(agent.id, total)
        if agent.removal_timer is not None:
            agent.removal_timer.cancel()
        agent.outbox.put_nowait(None)
        agent.outbox = outbox
        was_unreachable = agent.state is AgentState.UNREACHABLE
        agent.transition(AgentState.REGISTERED)
        agent.reregistered_time = self.effects.now()
        agent.info = info
        if self.offerable(agent):
            self.allocator.activate_agent(agent.id)
        if was_unreachable:
            agent.unreachable_time = None
            self.agent_tasks.reachable(agent, register.executors)
        else:
            self.agent_tasks.reregistered(agent, register.executors)
        log.info("agent %s re-registered", agent.id)
        self.effects.allocate_soon()

    # Going away ------------------------------------------------------------------------------
    def disconnected(self, agent: Agent, outbox: object) -> None:
        """Its link ended: offers rescinded; unreachable if it stays down past the grace."""
        if agent.outbox is not outbox or self.book.agents.get(agent.id) is not agent:
            return
        if agent.state is not AgentState.REGISTERED:
            return  # unreachable already: the master ended the link itself
        log.info("agent %s disconnected", agent.id)
        agent.transition(AgentState.DISCONNECTED)
        # Before rescinding: the resources the rescinds return must not be offered again.
        self.allocator.deactivate_agent(agent.id)
        self.offers.rescind_on(agent.id)
        # As Mesos's health checks: a link that stays down as long as the missed pings would
        # take makes the agent unreachable (its tasks may still run; it may come back).
        agent.removal_timer = self.effects.call_later(
            self.link_grace, lambda: self.mark_unreachable(agent.id, "its link stayed down"))

    def mark_unreachable(self, agent_id: str, why: str) -> None:
        agent = self.book.agents.get(agent_id)
        if agent is None or agent.state is AgentState.UNREACHABLE:
            return
        log.warning("agent %s is unreachable: %s", agent_id, why)
        if agent.removal_timer is not None:
            agent.removal_timer.cancel()
            agent.removal_timer = None
        was_connected = agent.connected
        agent.transition(AgentState.UNREACHABLE)
        agent.unreachable_time = self.effects.now()
        self.book.registry.unreachable[agent_id] = agent.unreachable_time
        self._save_registry(f"mark agent {agent_id} unreachable")
        self.allocator.deactivate_agent(agent_id)
        self.offers.rescind_on(agent_id)
        if was_connected:
            agent.outbox.put_nowait(None)  # end the link; the agent re-registers when it can
        self.agent_tasks.unreachable(agent, why)
        self.effects.count("master/slave_unreachable_completed")
        self.effects.broadcast(agent_failure(agent_id))

    def remove(self, agent_id: str) -> None:
        """The agent is gone for good (Mesos's removeSlave): its tasks end, its record goes."""
        agent = self.book.agents.pop(agent_id, None)
        if agent is None:
            return
        log.warning("removing agent %s: it did not come back", agent_id)
        if agent.removal_timer is not None:
            agent.removal_timer.cancel()
        was_connected = agent.connected
        agent.transition(AgentState.REMOVED)
        if was_connected:
            agent.outbox.put_nowait(None)
        self.book.registry.agents.pop(agent_id, None)
        self.book.registry.unreachable.pop(agent_id, None)
        self._save_registry(f"remove agent {agent_id}")
        self.offers.rescind_on(agent_id)
        self.agent_tasks.removed(agent)
        self.allocator.remove_agent(agent_id)
        self.effects.broadcast(agent_failure(agent_id))


__all__ = ["AgentLifecycle", "AgentRemoved"]
