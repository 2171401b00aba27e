"""What the allocator knows about agents and frameworks, and the one place that moves resources
between "available on an agent" and "held by a framework in a role" (:class:`Books`).

Every offered or allocated resource is recorded three times, kept in step by :class:`Books`:
on the agent (``held`` per (framework, role), so removing an agent or a framework releases exactly
what it had), on the framework (quantities per role, for its DRF share inside the role) and in the
role tree (subtree quantities, for role shares and quota).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent_runtime.master.allocator.quantities import (
    MinAllocatable,
    Quantities,
    add_into,
    sub_into,
)
from agent_runtime.master.allocator.roles import RoleTree
from agent_runtime.resources import Resources

EMPTY = Resources()


@dataclass(frozen=True, slots=True)
class Allocation:
    framework_id: str
    role: str
    agent_id: str
    resources: Resources


@dataclass(slots=True)
class Refusal:
    """A declined offer: hides the agent while what would be offered is contained in it."""

    resources: Resources
    expires: float


@dataclass(slots=True, eq=False)
class AgentState:
    id: str
    total: Resources
    available: Resources
    held: dict[tuple[str, str], Resources] = field(default_factory=dict)
    # Derived from `available` by refresh(); the cycle reads these instead of Resources.
    amounts: Quantities = field(default_factory=dict)  # scalars, all reservations summed
    unreserved: Quantities = field(default_factory=dict)
    owners: tuple[str, ...] = ()  # roles holding reservations among the available resources
    has_gpus: bool = False
    active: bool = True

    def refresh(self) -> None:
        self.amounts, self.unreserved, self.owners = self.available.quantities()

    def allocated(self) -> Resources:
        out = EMPTY
        for resources in self.held.values():
            out = resources if not out else out + resources
        return out


@dataclass(slots=True, eq=False)
class FrameworkState:
    id: str
    roles: tuple[str, ...] = ()
    suppressed: set[str] = field(default_factory=set)
    active: bool = False
    gpu_aware: bool = False
    alloc: dict[str, Quantities] = field(default_factory=dict)  # per role
    held: set[tuple[str, str]] = field(default_factory=set)  # (role, agent) it holds resources on
    # Each refusal is its own filter, as in Mesos: an offer is hidden while one refusal contains
    # it; summing refusals would hide amounts the framework never saw.
    refusals: dict[tuple[str, str], list[Refusal]] = field(default_factory=dict)
    # FrameworkInfo.offer_filters: per role, the least an offer must hold for this framework
    # (on top of the master's --min_allocatable_resources).
    minimums: dict[str, MinAllocatable] = field(default_factory=dict)

    def too_small(self, role: str, amounts: Quantities, anything: bool) -> bool:
        minimum = self.minimums.get(role)
        return minimum is not None and not minimum.allows(amounts, anything)

    def refused(self, role: str, agent_id: str, offer: Resources, now: float) -> bool:
        key = (role, agent_id)
        refusals = self.refusals.get(key)
        if refusals is None:
            return False
        live = [r for r in refusals if r.expires > now]
        if not live:
            del self.refusals[key]
            return False
        if len(live) != len(refusals):
            self.refusals[key] = live
        # Equality first: a re-offer of exactly what was declined is the common case, and far
        # cheaper to compare than range containment.
        return any(r.resources == offer or r.resources.contains(offer) for r in live)

    def forget_refusals(self, roles: set[str] | None = None, agent_id: str | None = None) -> None:
        for key in [k for k in self.refusals
                    if (roles is None or k[0] in roles) and (agent_id is None or k[1] == agent_id)]:
            del self.refusals[key]


class Books:
    """Moves resources between agents' availability and frameworks' holdings."""

    def __init__(self, tree: RoleTree) -> None:
        self.tree = tree
        self.agents: dict[str, AgentState] = {}
        self.frameworks: dict[str, FrameworkState] = {}
        self.total: Quantities = {}  # cluster scalars, every agent, reserved or not

    def framework(self, framework_id: str) -> FrameworkState:
        """The framework's record; a placeholder (inactive, no roles) when the master reports
        resources of a framework it has not added yet."""
        found = self.frameworks.get(framework_id)
        if found is None:
            found = self.frameworks[framework_id] = FrameworkState(framework_id)
        return found

    def charge(self, framework: FrameworkState, role: str, agent: AgentState,
               resources: Resources, amounts: Quantities, unreserved: Quantities) -> None:
        """``resources`` (of which ``amounts``/``unreserved`` are the quantities) leave the
        agent's availability and are held by ``framework`` in ``role``."""
        if resources is agent.available:
            agent.available = EMPTY
            agent.amounts, agent.unreserved, agent.owners = {}, {}, ()
        else:
            agent.available = agent.available - resources
            agent.refresh()
        key = (framework.id, role)
        held = agent.held.get(key)
        agent.held[key] = resources if held is None else held + resources
        framework.held.add((role, agent.id))
        mine = framework.alloc.get(role)
        if mine is None:
            framework.alloc[role] = dict(amounts)
        else:
            add_into(mine, amounts)
        self.tree.charge(role, amounts, unreserved)

    def discharge(self, framework_id: str, role: str, agent: AgentState, resources: Resources,
                  *, to_available: bool = True) -> Resources:
        """Give back what of ``resources`` the framework holds there; returns that part."""
        key = (framework_id, role)
        held = agent.held.get(key)
        if held is None or not resources:
            return EMPTY
        if held is resources or held == resources:  # an offer returns the very bag it held
            back, rest = held, EMPTY
        else:
            rest = held - resources
            back = held - rest  # the part of `resources` that was really held
        if rest:
            agent.held[key] = rest
        else:
            del agent.held[key]
        amounts, unreserved, owners = back.quantities()
        if to_available and back:
            if agent.available:
                agent.available = agent.available + back
                agent.refresh()
            else:  # the common return of a whole-agent offer: its quantities are back's
                agent.available = back
                agent.amounts, agent.unreserved, agent.owners = amounts, unreserved, owners
        framework = self.frameworks.get(framework_id)
        if framework is not None:
            mine = framework.alloc.get(role)
            if mine is not None:
                sub_into(mine, amounts)
                if not mine:
                    del framework.alloc[role]
            if not rest:
                framework.held.discard((role, agent.id))
        self.tree.discharge(role, amounts, unreserved)
        return back

    def reset_available(self, agent: AgentState) -> None:
        """Recompute availability as total minus everything held (after a conversion)."""
        allocated = agent.allocated()
        agent.available = agent.total - allocated if allocated else agent.total
        agent.refresh()
