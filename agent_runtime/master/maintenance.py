"""Maintenance and operator control of agents: schedules, machine modes, drain, deactivation.

Machines move UP -> DRAINING (named in a schedule window) -> DOWN (START_MAINTENANCE) -> UP
(STOP_MAINTENANCE, which also drops them from the schedule). As Mesos: a DOWN machine cannot be
dropped from the schedule, and only a scheduled machine can go down. A machine is its
``(hostname, ip)``; an agent is on it when its hostname (or, with no hostname, its ip) matches.

Agents on a DOWN machine, deactivated ones (DEACTIVATE_AGENT) and draining ones (DRAIN_AGENT)
are not offered: the allocator is told the agent is inactive and its offers are rescinded, and
an agent that registers again stays so (the agent lifecycle asks :meth:`offered`). DRAIN_AGENT
also kills every task on the agent; the agent is DRAINED once none is left. Agents in a window
are offered with the window as ``Offer.unavailability``, and the frameworks running something
there get inverse offers (:mod:`agent_runtime.master.inverse_offers`).

The state is the registry's (``schedule``, ``down``, ``deactivated``, ``draining``): each
change is written there before it takes effect, so a new leading master goes on with it, and a
failed write changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from agent_runtime.errors import BadRequest
from agent_runtime.master.allocator import Allocator
from agent_runtime.master.book import MasterBook
from agent_runtime.master.effects import MasterEffects
from agent_runtime.master.inverse_offers import InverseOffers
from agent_runtime.master.model import Agent
from agent_runtime.master.offers import Offers
from agent_runtime.proto import internal_pb2, maintenance_pb2, mesos_pb2

log = logging.getLogger(__name__)

Machine = tuple[str, str]  # (hostname, ip)
UP, DRAINING, DOWN = "UP", "DRAINING", "DOWN"


def machine_of(machine_id: mesos_pb2.MachineID, where: str) -> Machine:
    if not machine_id.hostname and not machine_id.ip:
        raise BadRequest(f"{where}: a machine needs a 'hostname' or an 'ip'")
    return (machine_id.hostname.lower(), machine_id.ip)


def machine_proto(machine: Machine) -> mesos_pb2.MachineID:
    out = mesos_pb2.MachineID()
    if machine[0]:
        out.hostname = machine[0]
    if machine[1]:
        out.ip = machine[1]
    return out


def _ip(agent: Agent) -> str:
    return agent.pid.rpartition("@")[2].partition(":")[0]


class Maintenance:
    def __init__(self, book: MasterBook, effects: MasterEffects, allocator: Allocator,
                 offers: Offers, *, master_id: str = "") -> None:
        self.book = book
        self.effects = effects
        self.allocator = allocator
        self.offers = offers
        self.inverse = InverseOffers(book, effects, master_id=master_id,
                                     offer_timeout=offers.offer_timeout)
        offers.unavailability = self.unavailability
        self._indexed: maintenance_pb2.Schedule | None = None
        self._windows: dict[Machine, mesos_pb2.Unavailability] = {}
        # The scheduled machines by hostname and, those without one, by IP (with their place
        # in the schedule): an agent's window is two lookups, not a walk of the schedule, as
        # every offer asks for it.
        self._by_name: dict[str, tuple[int, Machine]] = {}
        self._by_ip: dict[str, tuple[int, Machine]] = {}

    # The registry's record -------------------------------------------------------------------
    @property
    def schedule(self) -> maintenance_pb2.Schedule:
        return self.book.registry.schedule

    @property
    def deactivated(self) -> set[str]:
        return self.book.registry.deactivated

    @property
    def draining(self) -> dict[str, mesos_pb2.DrainConfig]:
        return self.book.registry.draining

    @property
    def modes(self) -> dict[Machine, str]:
        down = set(self.book.registry.down)
        return {m: DOWN if m in down else DRAINING for m in self._index()}

    def _commit(self, **changes: Any) -> None:
        """Write the registry with ``changes``; on a failed write, nothing has changed."""
        registry = self.book.registry
        before = {name: getattr(registry, name) for name in changes}
        for name, value in changes.items():
            setattr(registry, name, value)
        try:
            self.effects.save_registry()
        except Exception:
            for name, value in before.items():
                setattr(registry, name, value)
            raise

    # Machines --------------------------------------------------------------------------------
    def _index(self) -> dict[Machine, mesos_pb2.Unavailability]:
        """Each scheduled machine's window, rebuilt when the schedule is replaced."""
        schedule = self.book.registry.schedule
        if self._indexed is not schedule:
            self._windows = {machine_of(m, "schedule"): window.unavailability
                             for window in schedule.windows for m in window.machine_ids}
            self._by_name, self._by_ip = {}, {}
            for place, machine in enumerate(self._windows):
                index = self._by_name if machine[0] else self._by_ip
                index.setdefault(machine[0] or machine[1], (place, machine))
            self._indexed = schedule
        return self._windows

    def _scheduled(self, agent: Agent) -> Machine | None:
        """As ``_machine(agent, self._index())``: the first scheduled machine it is on."""
        self._index()
        found = [hit for hit in (self._by_name.get(agent.info.hostname.lower()),
                                 self._by_ip.get(_ip(agent))) if hit is not None]
        return min(found)[1] if found else None

    def _machine(self, agent: Agent, machines: Iterable[Machine]) -> Machine | None:
        hostname, ip = agent.info.hostname.lower(), _ip(agent)
        for machine in machines:
            if (machine[0] and machine[0] == hostname) or (not machine[0] and machine[1] == ip):
                return machine
        return None

    def agents_on(self, machines: Iterable[Machine]) -> list[Agent]:
        wanted = list(machines)
        return [a for a in self.book.agents.values() if self._machine(a, wanted) is not None]

    def mode_of(self, agent: Agent) -> str:
        machine = self._scheduled(agent)
        return UP if machine is None else self.modes[machine]

    def unavailability(self, agent: Agent) -> mesos_pb2.Unavailability | None:
        windows = self._index()
        if not windows:
            return None
        machine = self._scheduled(agent)
        return None if machine is None else windows[machine]

    def in_windows(self) -> Iterator[tuple[Agent, mesos_pb2.Unavailability]]:
        if not self._index():
            return
        for agent in self.book.agents.values():
            unavailability = self.unavailability(agent)
            if unavailability is not None:
                yield agent, unavailability

    def send_inverse_offers(self) -> None:
        """After each allocation run (the master calls it)."""
        if self._index() or self.inverse.outstanding:
            self.inverse.run(self.in_windows())

    def update_schedule(self, schedule: maintenance_pb2.Schedule) -> None:
        scheduled: set[Machine] = set()
        for w, window in enumerate(schedule.windows):
            if not window.machine_ids:
                raise BadRequest(f"windows[{w}]: a window needs at least one machine")
            if not window.HasField("unavailability") or \
                    not window.unavailability.HasField("start"):
                raise BadRequest(f"windows[{w}]: 'unavailability.start' is required")
            if window.unavailability.duration.nanoseconds < 0:
                raise BadRequest(f"windows[{w}]: a negative duration")
            for m, machine_id in enumerate(window.machine_ids):
                machine = machine_of(machine_id, f"windows[{w}].machine_ids[{m}]")
                if machine in scheduled:
                    raise BadRequest(f"Machine '{machine[0] or machine[1]}' is in more than "
                                     "one window")
                scheduled.add(machine)
        for machine in self.book.registry.down:
            if machine not in scheduled:
                raise BadRequest(f"Machine '{machine[0] or machine[1]}' is down; it must stay "
                                 "in the schedule until STOP_MAINTENANCE")
        before = {agent.id: self.unavailability(agent) for agent in self.book.agents.values()}
        new = maintenance_pb2.Schedule()
        new.CopyFrom(schedule)
        self._commit(schedule=new)
        self._windows_changed(before)

    def _windows_changed(self, before: dict[str, mesos_pb2.Unavailability | None]) -> None:
        """As Mesos: offers of agents whose window changed are rescinded (the next ones carry
        the new ``unavailability``), and their inverse offers start over."""
        changed = False
        for agent in list(self.book.agents.values()):
            if self.unavailability(agent) != before.get(agent.id):
                self.offers.rescind_on(agent.id)
                self.inverse.reset(agent.id)
                changed = True
        if changed:
            self.effects.allocate_soon()

    def start(self, machine_ids: Iterable[mesos_pb2.MachineID]) -> None:
        machines = [machine_of(m, f"machines[{i}]") for i, m in enumerate(machine_ids)]
        for machine in machines:
            if machine not in self._index():
                raise BadRequest(f"Machine '{machine[0] or machine[1]}' is not in the "
                                 "maintenance schedule")
        down = list(self.book.registry.down)
        self._commit(down=down + [m for m in dict.fromkeys(machines) if m not in down])
        for agent in self.agents_on(machines):
            self._refresh(agent)

    def stop(self, machine_ids: Iterable[mesos_pb2.MachineID]) -> None:
        machines = [machine_of(m, f"machines[{i}]") for i, m in enumerate(machine_ids)]
        for machine in machines:
            if machine not in self.book.registry.down:
                raise BadRequest(f"Machine '{machine[0] or machine[1]}' is not down")
        kept = maintenance_pb2.Schedule()
        for window in self.schedule.windows:
            ids = [m for m in window.machine_ids if machine_of(m, "schedule") not in machines]
            if ids:
                new = kept.windows.add()
                new.machine_ids.extend(ids)
                new.unavailability.CopyFrom(window.unavailability)
        before = {agent.id: self.unavailability(agent) for agent in self.book.agents.values()}
        self._commit(schedule=kept,
                     down=[m for m in self.book.registry.down if m not in machines])
        for agent in self.agents_on(machines):
            self._refresh(agent)
        self._windows_changed(before)

    def status(self) -> maintenance_pb2.ClusterStatus:
        out = maintenance_pb2.ClusterStatus()
        for machine, mode in sorted(self.modes.items()):
            if mode == DRAINING:
                draining = out.draining_machines.add()
                draining.id.CopyFrom(machine_proto(machine))
                # What the frameworks running there answered to their inverse offers.
                draining.statuses.extend(self.inverse.statuses_on(
                    a.id for a in self.agents_on([machine])))
            elif mode == DOWN:
                out.down_machines.append(machine_proto(machine))
        return out

    # Agents ----------------------------------------------------------------------------------
    def _agent(self, agent_id: str) -> Agent:
        agent = self.book.agents.get(agent_id)
        if agent is None:
            raise BadRequest(f"No agent found with ID '{agent_id}'")
        return agent

    def offered(self, agent: Agent) -> bool:
        """Whether the operator lets the agent's resources be offered."""
        return (agent.id not in self.deactivated and agent.id not in self.draining
                and self.mode_of(agent) != DOWN)

    def _refresh(self, agent: Agent) -> None:
        if not agent.connected:
            return  # re-registration activates it; offered() is asked again then
        if self.offered(agent):
            self.allocator.activate_agent(agent.id)
            self.effects.allocate_soon()
        else:
            # Before rescinding: the resources the rescinds return must not be offered again.
            self.allocator.deactivate_agent(agent.id)
            self.offers.rescind_on(agent.id)

    def deactivate(self, agent_id: str) -> None:
        agent = self._agent(agent_id)
        self._commit(deactivated=self.deactivated | {agent_id})
        self._refresh(agent)

    def reactivate(self, agent_id: str) -> None:
        agent = self._agent(agent_id)
        if agent_id in self.draining:
            raise BadRequest(f"Agent '{agent_id}' is draining; it cannot be reactivated "
                             "until it is drained")
        self._commit(deactivated=self.deactivated - {agent_id})
        self._refresh(agent)

    def drain(self, agent_id: str, max_grace_ns: int | None, mark_gone: bool) -> None:
        agent = self._agent(agent_id)
        config = mesos_pb2.DrainConfig(mark_gone=mark_gone)
        if max_grace_ns is not None:
            config.max_grace_period.nanoseconds = max_grace_ns
        # As Mesos: a drained agent stays deactivated.
        self._commit(draining={**self.draining, agent_id: config},
                     deactivated=self.deactivated | {agent_id})
        self._refresh(agent)
        for framework, task in self.book.tasks_on(agent):
            if task.terminal:
                continue
            message = internal_pb2.MasterMessage()
            message.kill_task.framework_id.value = framework.id
            message.kill_task.task_id.value = task.task_id
            if max_grace_ns is not None:
                message.kill_task.kill_policy.grace_period.nanoseconds = max_grace_ns
            self.effects.to_agent(agent, message)

    def drained(self, agent: Agent) -> bool:
        return not any(not task.terminal for _, task in self.book.tasks_on(agent))

    def drain_info(self, agent: Agent) -> mesos_pb2.DrainInfo | None:
        config = self.draining.get(agent.id)
        if config is None:
            return None
        info = mesos_pb2.DrainInfo(
            state=mesos_pb2.DRAINED if self.drained(agent) else mesos_pb2.DRAINING)
        info.config.CopyFrom(config)
        return info


__all__ = ["DOWN", "DRAINING", "UP", "Maintenance", "machine_of", "machine_proto"]
