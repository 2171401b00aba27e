"""The allocator core: decides which framework is offered which agent's resources, for which role.

Pure: no I/O, no clock, no asyncio. The master tells it about agents, frameworks and returned
resources, calls :meth:`Allocator.allocate` with the current time, and turns each returned
:class:`Allocation` into an offer.

One cycle walks the agents in random order; for each agent it walks roles by weighted DRF share,
and inside a role the frameworks by their share, and gives all of the agent's resources that the
role may use to the first framework that wants them (not suppressed, not filtered). A refusal
filter, keyed on (framework, role, agent), hides an agent for ``refuse_seconds`` as long as what
would be offered is contained in what was refused.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from agent_runtime.master.allocator.sorter import DRFSorter
from agent_runtime.resources import Resources

# Mesos's default minimum allocatable resources: an offer is worth making when it has at least
# this many cpus or this much memory (``--min_allocatable_resources=cpus:0.01|mem:32``).
MIN_CPUS_MILLI = 10
MIN_MEM_MILLI = 32_000
MAX_REFUSE_SECONDS = 31_536_000.0


@dataclass(frozen=True, slots=True)
class Allocation:
    framework_id: str
    role: str
    agent_id: str
    resources: Resources


@dataclass(slots=True)
class _Agent:
    total: Resources
    allocated: Resources = field(default_factory=Resources)
    has_gpus: bool = False
    active: bool = True

    @property
    def available(self) -> Resources:
        return self.total - self.allocated


@dataclass(slots=True)
class _Framework:
    roles: tuple[str, ...]
    suppressed: set[str] = field(default_factory=set)
    active: bool = True
    gpu_aware: bool = False


@dataclass(slots=True)
class _Filter:
    resources: Resources
    expires: float


class Allocator:
    def __init__(
        self,
        *,
        weights: dict[str, float] | None = None,
        allocation_interval: float = 1.0,
        filter_gpu_resources: bool = True,
        seed: int | None = None,
    ) -> None:
        self._agents: dict[str, _Agent] = {}
        self._frameworks: dict[str, _Framework] = {}
        self._weights = dict(weights or {})
        self._roles = DRFSorter()
        self._role_frameworks: dict[str, DRFSorter] = {}
        # Each refusal is its own filter, as in Mesos: an offer is hidden while one refusal
        # contains it; summing refusals would hide amounts the framework never saw.
        self._filters: dict[tuple[str, str, str], list[_Filter]] = {}
        self._interval = allocation_interval
        self._filter_gpus = filter_gpu_resources
        self._random = random.Random(seed)
        self._total = Resources()

    # Agents ------------------------------------------------------------------------------
    def add_agent(self, agent_id: str, total: Resources) -> None:
        self._agents[agent_id] = _Agent(total, has_gpus=total.scalar("gpus") > 0)
        self._total = self._total + total
        self._refresh_totals()

    def remove_agent(self, agent_id: str) -> None:
        agent = self._agents.pop(agent_id, None)
        if agent is None:
            return
        self._total = self._total - agent.total
        self._refresh_totals()
        for key in [k for k in self._filters if k[2] == agent_id]:
            del self._filters[key]

    def activate_agent(self, agent_id: str) -> None:
        if agent_id in self._agents:
            self._agents[agent_id].active = True

    def deactivate_agent(self, agent_id: str) -> None:
        """A disconnected agent keeps its resources in the totals but gets no offers."""
        if agent_id in self._agents:
            self._agents[agent_id].active = False

    def has_agent(self, agent_id: str) -> bool:
        return agent_id in self._agents

    def _refresh_totals(self) -> None:
        totals = self._total.scalars()
        self._roles.set_total(totals)
        for sorter in self._role_frameworks.values():
            sorter.set_total(totals)

    # Frameworks --------------------------------------------------------------------------
    def add_framework(
        self,
        framework_id: str,
        roles: list[str],
        *,
        suppressed: list[str] | None = None,
        gpu_aware: bool = False,
    ) -> None:
        self._frameworks[framework_id] = _Framework(
            tuple(roles), set(suppressed or ()), True, gpu_aware
        )
        for role in roles:
            self._track_role(role)
            self._role_frameworks[role].add(framework_id)

    def update_framework(
        self, framework_id: str, roles: list[str], *, gpu_aware: bool = False
    ) -> None:
        framework = self._frameworks.get(framework_id)
        if framework is None:
            self.add_framework(framework_id, roles, gpu_aware=gpu_aware)
            return
        for role in framework.roles:
            if role not in roles and role in self._role_frameworks:
                self._role_frameworks[role].remove(framework_id)
        framework.roles = tuple(roles)
        framework.gpu_aware = gpu_aware
        for role in roles:
            self._track_role(role)
            if framework_id not in self._role_frameworks[role]:
                self._role_frameworks[role].add(framework_id)

    def remove_framework(self, framework_id: str) -> None:
        framework = self._frameworks.pop(framework_id, None)
        if framework is None:
            return
        for role in framework.roles:
            sorter = self._role_frameworks.get(role)
            if sorter is not None:
                sorter.remove(framework_id)
        for key in [k for k in self._filters if k[0] == framework_id]:
            del self._filters[key]

    def activate_framework(self, framework_id: str) -> None:
        if framework_id in self._frameworks:
            self._frameworks[framework_id].active = True

    def deactivate_framework(self, framework_id: str) -> None:
        if framework_id in self._frameworks:
            self._frameworks[framework_id].active = False

    def suppress(self, framework_id: str, roles: list[str] | None = None) -> None:
        framework = self._frameworks.get(framework_id)
        if framework is not None:
            framework.suppressed.update(roles or framework.roles)

    def revive(self, framework_id: str, roles: list[str] | None = None) -> None:
        framework = self._frameworks.get(framework_id)
        if framework is None:
            return
        revived = set(roles or framework.roles)
        framework.suppressed -= revived
        for key in [k for k in self._filters if k[0] == framework_id and k[1] in revived]:
            del self._filters[key]

    def set_weight(self, role: str, weight: float) -> None:
        self._weights[role] = weight
        self._roles.set_weight(role, weight)

    def _track_role(self, role: str) -> None:
        if role not in self._role_frameworks:
            sorter = DRFSorter()
            sorter.set_total(self._total.scalars())
            self._role_frameworks[role] = sorter
            self._roles.add(role, self._weights.get(role, 1.0))

    # Allocation bookkeeping -----------------------------------------------------------------
    def allocate_resources(
        self, framework_id: str, role: str, agent_id: str, resources: Resources
    ) -> None:
        """Record resources already in use (e.g. tasks reported by a re-registering agent)."""
        agent = self._agents.get(agent_id)
        if agent is None:
            return
        agent.allocated = agent.allocated + resources
        self._charge(framework_id, role, resources.scalars())

    def recover(
        self,
        framework_id: str,
        role: str,
        agent_id: str,
        resources: Resources,
        *,
        now: float,
        refuse_seconds: float | None = None,
    ) -> None:
        """Resources come back (unused offer, finished task); optionally with a refusal filter."""
        agent = self._agents.get(agent_id)
        if agent is not None and resources:
            agent.allocated = agent.allocated - resources
        quantities = resources.scalars()
        self._roles.unallocated(role, quantities)
        sorter = self._role_frameworks.get(role)
        if sorter is not None:
            sorter.unallocated(framework_id, quantities)
        if refuse_seconds is not None and refuse_seconds > 0 and resources:
            seconds = min(max(refuse_seconds, self._interval), MAX_REFUSE_SECONDS)
            key = (framework_id, role, agent_id)
            live = [f for f in self._filters.get(key, ()) if f.expires > now]
            self._filters[key] = [*live, _Filter(resources, now + seconds)]

    def _charge(self, framework_id: str, role: str, quantities: dict[str, int]) -> None:
        self._track_role(role)
        self._roles.allocated(role, quantities)
        sorter = self._role_frameworks[role]
        if framework_id not in sorter:
            sorter.add(framework_id)
        sorter.allocated(framework_id, quantities)

    def _filtered(self, framework_id: str, role: str, agent_id: str, offer: Resources,
                  now: float) -> bool:
        key = (framework_id, role, agent_id)
        refusals = self._filters.get(key)
        if refusals is None:
            return False
        live = [f for f in refusals if f.expires > now]
        if not live:
            del self._filters[key]
            return False
        self._filters[key] = live
        return any(f.resources.contains(offer) for f in live)

    # The cycle -----------------------------------------------------------------------------
    def allocate(self, now: float) -> list[Allocation]:
        out: list[Allocation] = []
        agent_ids = list(self._agents)
        self._random.shuffle(agent_ids)
        for agent_id in agent_ids:
            agent = self._agents[agent_id]
            if not agent.active:
                continue
            available = agent.available
            if not _allocatable(available):
                continue
            for role in self._roles.sort():
                offerable = available.allocatable_to(role)
                if not _allocatable(offerable):
                    continue
                sorter = self._role_frameworks.get(role)
                if sorter is None:
                    continue
                for framework_id in sorter.sort():
                    framework = self._frameworks.get(framework_id)
                    if (
                        framework is None
                        or not framework.active
                        or role in framework.suppressed
                        or role not in framework.roles
                    ):
                        continue
                    if agent.has_gpus and self._filter_gpus and not framework.gpu_aware:
                        continue
                    if self._filtered(framework_id, role, agent_id, offerable, now):
                        continue
                    out.append(Allocation(framework_id, role, agent_id, offerable))
                    agent.allocated = agent.allocated + offerable
                    self._charge(framework_id, role, offerable.scalars())
                    available = available - offerable
                    break
                if not _allocatable(available):
                    break
        return out

    # Introspection ---------------------------------------------------------------------------
    def role_allocation(self, role: str) -> dict[str, int]:
        return self._roles.allocation(role)

    def weight(self, role: str) -> float:
        return self._weights.get(role, 1.0)


def _allocatable(resources: Resources) -> bool:
    if not resources:
        return False
    quantities = resources.scalars()
    return quantities.get("cpus", 0) >= MIN_CPUS_MILLI or quantities.get("mem", 0) >= MIN_MEM_MILLI
