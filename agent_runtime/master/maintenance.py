"""Maintenance and operator control of agents: schedules, machine modes, drain, deactivation.

Machines move UP -> DRAINING (named in a schedule window) -> DOWN (START_MAINTENANCE) -> UP
(STOP_MAINTENANCE, which also drops them from the schedule). As Mesos: a DOWN machine cannot be
dropped from the schedule, and only a scheduled machine can go down. A machine is its
``(hostname, ip)``; an agent is on it when its hostname (or, with no hostname, its ip) matches.

Agents on a DOWN machine, deactivated ones (DEACTIVATE_AGENT) and draining ones (DRAIN_AGENT)
are not offered: the allocator is told the agent is inactive and its offers are rescinded.
DRAIN_AGENT also kills every task on the agent; the agent is DRAINED once none is left.

The state lives in memory: a new leading master starts with no schedule (the registry does not
carry it yet).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from agent_runtime.errors import BadRequest
from agent_runtime.master.allocator import Allocator
from agent_runtime.master.book import MasterBook
from agent_runtime.master.effects import MasterEffects
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


@dataclass(slots=True)
class Drain:
    config: mesos_pb2.DrainConfig


class Maintenance:
    def __init__(self, book: MasterBook, effects: MasterEffects, allocator: Allocator,
                 offers: Offers) -> None:
        self.book = book
        self.effects = effects
        self.allocator = allocator
        self.offers = offers
        self.schedule = maintenance_pb2.Schedule()
        self.modes: dict[Machine, str] = {}
        self.deactivated: set[str] = set()
        self.draining: dict[str, Drain] = {}

    # Machines --------------------------------------------------------------------------------
    def _on(self, agent: Agent, machine: Machine) -> bool:
        hostname, ip = machine
        if hostname:
            return agent.info.hostname.lower() == hostname
        return agent.pid.rpartition("@")[2].partition(":")[0] == ip

    def agents_on(self, machines: Iterable[Machine]) -> list[Agent]:
        wanted = list(machines)
        return [a for a in self.book.agents.values() if any(self._on(a, m) for m in wanted)]

    def mode_of(self, agent: Agent) -> str:
        for machine, mode in self.modes.items():
            if self._on(agent, machine):
                return mode
        return UP

    def unavailability(self, agent: Agent) -> mesos_pb2.Unavailability | None:
        for window in self.schedule.windows:
            for machine_id in window.machine_ids:
                if self._on(agent, machine_of(machine_id, "schedule")):
                    return window.unavailability
        return None

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
        for machine, mode in self.modes.items():
            if mode == DOWN and machine not in scheduled:
                raise BadRequest(f"Machine '{machine[0] or machine[1]}' is down; it must stay "
                                 "in the schedule until STOP_MAINTENANCE")
        self.schedule = maintenance_pb2.Schedule()
        self.schedule.CopyFrom(schedule)
        self.modes = {m: self.modes.get(m, DRAINING) for m in scheduled}

    def start(self, machine_ids: Iterable[mesos_pb2.MachineID]) -> None:
        machines = [machine_of(m, f"machines[{i}]") for i, m in enumerate(machine_ids)]
        for machine in machines:
            if machine not in self.modes:
                raise BadRequest(f"Machine '{machine[0] or machine[1]}' is not in the "
                                 "maintenance schedule")
        for machine in machines:
            self.modes[machine] = DOWN
        for agent in self.agents_on(machines):
            self._refresh(agent)

    def stop(self, machine_ids: Iterable[mesos_pb2.MachineID]) -> None:
        machines = [machine_of(m, f"machines[{i}]") for i, m in enumerate(machine_ids)]
        for machine in machines:
            if self.modes.get(machine) != DOWN:
                raise BadRequest(f"Machine '{machine[0] or machine[1]}' is not down")
        for machine in machines:
            del self.modes[machine]
        kept = maintenance_pb2.Schedule()
        for window in self.schedule.windows:
            ids = [m for m in window.machine_ids if machine_of(m, "schedule") not in machines]
            if ids:
                new = kept.windows.add()
                new.machine_ids.extend(ids)
                new.unavailability.CopyFrom(window.unavailability)
        self.schedule = kept
        for agent in self.agents_on(machines):
            self._refresh(agent)

    def status(self) -> maintenance_pb2.ClusterStatus:
        out = maintenance_pb2.ClusterStatus()
        for machine, mode in sorted(self.modes.items()):
            if mode == DRAINING:
                out.draining_machines.add().id.CopyFrom(machine_proto(machine))
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
        self.deactivated.add(self._agent(agent_id).id)
        self._refresh(self.book.agents[agent_id])

    def reactivate(self, agent_id: str) -> None:
        agent = self._agent(agent_id)
        if agent_id in self.draining:
            raise BadRequest(f"Agent '{agent_id}' is draining; it cannot be reactivated "
                             "until it is drained")
        self.deactivated.discard(agent_id)
        self._refresh(agent)

    def drain(self, agent_id: str, max_grace_ns: int | None, mark_gone: bool) -> None:
        agent = self._agent(agent_id)
        config = mesos_pb2.DrainConfig(mark_gone=mark_gone)
        if max_grace_ns is not None:
            config.max_grace_period.nanoseconds = max_grace_ns
        self.draining[agent_id] = Drain(config)
        self.deactivated.add(agent_id)  # as Mesos: a drained agent stays deactivated
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

    def drain_info(self, agent: Agent) -> mesos_pb2.DrainInfo | None:
        drain = self.draining.get(agent.id)
        if drain is None:
            return None
        live = any(not task.terminal for _, task in self.book.tasks_on(agent))
        info = mesos_pb2.DrainInfo(state=mesos_pb2.DRAINING if live else mesos_pb2.DRAINED)
        info.config.CopyFrom(drain.config)
        return info


__all__ = ["DOWN", "DRAINING", "UP", "Maintenance", "machine_of", "machine_proto"]
