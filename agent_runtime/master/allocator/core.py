"""The allocator core: which framework is offered which agent's resources, for which role.

Pure: no I/O, no clock, no asyncio. The master tells it about agents, frameworks, quota, weights
and returned resources, calls :meth:`Allocator.allocate` with the current time, and turns each
returned :class:`Allocation` into an offer.

Hierarchical weighted DRF with quota, as Mesos's ``HierarchicalDRF`` allocator
(``src/master/allocator/mesos/hierarchical.cpp``): the cycle itself is in :mod:`cycle`, the role
tree and quota arithmetic in :mod:`roles`, and the books that keep agents, frameworks and roles
in step in :mod:`state`. A refusal filter, keyed on (framework, role, agent), hides an agent for
``refuse_seconds`` as long as what would be offered is contained in what was refused.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping, Sequence

from agent_runtime.errors import BadRequest
from agent_runtime.master.allocator.cycle import Cycle
from agent_runtime.master.allocator.quantities import MinAllocatable, add_into, sub_into
from agent_runtime.master.allocator.roles import RoleTree
from agent_runtime.master.allocator.state import (
    AgentState,
    Allocation,
    Books,
    FrameworkState,
    Refusal,
)
from agent_runtime.resources import Resources

__all__ = ["MAX_REFUSE_SECONDS", "Allocation", "Allocator"]

# Mesos's default minimum allocatable resources: an offer is worth making when it has at least
# this many cpus or this much memory (``--min_allocatable_resources=cpus:0.01|mem:32``).
MIN_CPUS_MILLI = 10
MIN_MEM_MILLI = 32_000
MAX_REFUSE_SECONDS = 31_536_000.0


class Allocator:
    def __init__(
        self,
        *,
        weights: dict[str, float] | None = None,
        allocation_interval: float = 1.0,
        filter_gpu_resources: bool = True,
        seed: int | None = None,
        fair_sharing_excluded_resource_names: Iterable[str] | None = None,
        min_allocatable_resources: Sequence[Resources] | None = None,
    ) -> None:
        self._tree = RoleTree()
        for role, weight in (weights or {}).items():
            self.set_weight(role, weight)
        self._books = Books(self._tree)
        self._interval = allocation_interval
        self._filter_gpus = filter_gpu_resources
        self._random = random.Random(seed)
        self._excluded = frozenset(fair_sharing_excluded_resource_names or ())
        self._minimum = MinAllocatable([{"cpus": MIN_CPUS_MILLI}, {"mem": MIN_MEM_MILLI}])
        if min_allocatable_resources is not None:
            self.set_min_allocatable(min_allocatable_resources)

    def set_min_allocatable(self, alternatives: Sequence[Resources]) -> None:
        """``--min_allocatable_resources``: any one alternative, held in full, makes an offer
        worth sending; an empty list makes any non-empty offer worth it."""
        self._minimum = MinAllocatable([r.scalars() for r in alternatives])

    # Agents ------------------------------------------------------------------------------
    def add_agent(self, agent_id: str, total: Resources) -> None:
        if agent_id in self._books.agents:
            self.remove_agent(agent_id)
        agent = AgentState(agent_id, total, total, has_gpus=total.scalar("gpus") > 0)
        agent.refresh()
        self._books.agents[agent_id] = agent
        add_into(self._books.total, total.scalars())
        self._tree.track_reservations(total, +1)

    def remove_agent(self, agent_id: str) -> None:
        """Forget the agent and release everything held on it (offers are the master's)."""
        agent = self._books.agents.pop(agent_id, None)
        if agent is None:
            return
        for (framework_id, role), held in list(agent.held.items()):
            self._books.discharge(framework_id, role, agent, held, to_available=False)
        sub_into(self._books.total, agent.total.scalars())
        self._tree.track_reservations(agent.total, -1)
        for framework in self._books.frameworks.values():
            if framework.refusals:
                framework.forget_refusals(agent_id=agent_id)

    def update_agent(self, agent_id: str, total: Resources) -> None:
        """The agent's total changed (e.g. a reservation turned unreserved resources into
        reserved ones); what frameworks hold there stays as recorded."""
        agent = self._books.agents.get(agent_id)
        if agent is None or agent.total == total:
            return
        sub_into(self._books.total, agent.total.scalars())
        self._tree.track_reservations(agent.total, -1)
        agent.total = total
        agent.has_gpus = total.scalar("gpus") > 0
        add_into(self._books.total, total.scalars())
        self._tree.track_reservations(total, +1)
        self._books.reset_available(agent)

    def activate_agent(self, agent_id: str) -> None:
        if agent_id in self._books.agents:
            self._books.agents[agent_id].active = True

    def deactivate_agent(self, agent_id: str) -> None:
        """A disconnected agent keeps its resources in the totals but gets no offers."""
        if agent_id in self._books.agents:
            self._books.agents[agent_id].active = False

    def has_agent(self, agent_id: str) -> bool:
        return agent_id in self._books.agents

    # Frameworks --------------------------------------------------------------------------
    def add_framework(
        self,
        framework_id: str,
        roles: list[str],
        *,
        suppressed: list[str] | None = None,
        gpu_aware: bool = False,
    ) -> None:
        framework = self._books.framework(framework_id)
        self._subscribe(framework, tuple(roles))
        framework.suppressed = set(suppressed or ())
        framework.active = True
        framework.gpu_aware = gpu_aware

    def update_framework(
        self,
        framework_id: str,
        roles: list[str],
        *,
        gpu_aware: bool = False,
        suppressed: list[str] | None = None,
    ) -> None:
        """New roles and capabilities. With ``suppressed``, roles leaving the suppressed set
        are revived (their filters cleared), as UPDATE_FRAMEWORK does in Mesos."""
        framework = self._books.frameworks.get(framework_id)
        if framework is None or (not framework.active and not framework.roles):
            self.add_framework(framework_id, roles, suppressed=suppressed, gpu_aware=gpu_aware)
            return
        gone = set(framework.roles) - set(roles)
        self._subscribe(framework, tuple(roles))
        framework.gpu_aware = gpu_aware
        framework.suppressed -= gone
        framework.forget_refusals(roles=gone)
        if suppressed is not None:
            wanted = set(suppressed) & set(roles)
            framework.forget_refusals(roles=framework.suppressed - wanted)
            framework.suppressed = wanted

    def set_offer_filters(self, framework_id: str,
                          minimums: Mapping[str, Sequence[Mapping[str, int]]]) -> None:
        """FrameworkInfo.offer_filters: per role, alternatives of scalar amounts (milli units)
        of which an offer must hold one in full; a role left out keeps the master's minimum."""
        framework = self._books.frameworks.get(framework_id)
        if framework is not None:
            framework.minimums = {role: MinAllocatable(alternatives)
                                  for role, alternatives in minimums.items()}

    def remove_framework(self, framework_id: str) -> None:
        """Forget the framework and make everything it held available again."""
        framework = self._books.frameworks.get(framework_id)
        if framework is None:
            return
        for role, agent_id in list(framework.held):
            agent = self._books.agents.get(agent_id)
            held = agent.held.get((framework_id, role)) if agent is not None else None
            if agent is not None and held is not None:
                self._books.discharge(framework_id, role, agent, held)
        self._subscribe(framework, ())
        del self._books.frameworks[framework_id]

    def activate_framework(self, framework_id: str) -> None:
        framework = self._books.frameworks.get(framework_id)
        if framework is not None:
            framework.active = True

    def deactivate_framework(self, framework_id: str) -> None:
        """No offers while inactive; its filters go, as in Mesos (it will decide afresh)."""
        framework = self._books.frameworks.get(framework_id)
        if framework is not None:
            framework.active = False
            framework.refusals.clear()

    def suppress(self, framework_id: str, roles: list[str] | None = None) -> None:
        framework = self._books.frameworks.get(framework_id)
        if framework is not None:
            framework.suppressed.update(roles or framework.roles)

    def revive(self, framework_id: str, roles: list[str] | None = None) -> None:
        framework = self._books.frameworks.get(framework_id)
        if framework is None:
            return
        revived = set(roles or framework.roles)
        framework.suppressed -= revived
        framework.forget_refusals(roles=revived)

    def _subscribe(self, framework: FrameworkState, roles: tuple[str, ...]) -> None:
        tree = self._tree
        for role in roles:
            if role not in framework.roles:
                tree.node(role).subscribers += 1
        for role in framework.roles:
            if role not in roles:
                node = tree.get(role)
                if node is not None:
                    node.subscribers -= 1
                    tree.prune(node)
        framework.roles = roles

    # Weights and quota ---------------------------------------------------------------------
    def set_weight(self, role: str, weight: float) -> None:
        # Shares are divided by weights inside allocate(): refuse here what would crash there.
        if not 0 < weight < math.inf:
            raise BadRequest(f"Invalid weight for role '{role}': it must be a finite number > 0")
        self._tree.weights[role] = weight

    def weight(self, role: str) -> float:
        return self._tree.weight(role)

    def set_quota(self, role: str, guarantee: Resources | Mapping[str, int],
                  limit: Resources | Mapping[str, int]) -> None:
        """Quota on scalars: a guarantee (deprecated in Mesos, still honoured) and a limit; an
        empty limit means no limit, a name missing from it is not limited.

        Either may also be a mapping of thousandths: ``Resources`` drops zero amounts, and a
        limit of ``cpus:0`` (no cpus at all for the role) is a valid Mesos limit.
        """
        self._tree.set_quota(role, _amounts(guarantee), _amounts(limit))

    def remove_quota(self, role: str) -> None:
        if self._tree.get(role) is not None:
            self._tree.set_quota(role, {}, {})

    def quota_consumed(self, role: str) -> dict[str, int]:
        """Reservations in the role's subtree (even unallocated) + unreserved resources
        allocated to it, in thousandths."""
        node = self._tree.get(role)
        return node.consumed() if node is not None else {}

    # Allocation bookkeeping -----------------------------------------------------------------
    def allocate_resources(
        self, framework_id: str, role: str, agent_id: str, resources: Resources
    ) -> None:
        """Record resources already in use (e.g. tasks reported by a re-registering agent)."""
        agent = self._books.agents.get(agent_id)
        if agent is None or not resources:
            return
        amounts, unreserved, _ = resources.quantities()
        framework = self._books.framework(framework_id)
        self._books.charge(framework, role, agent, resources, amounts, unreserved)

    def update_allocation(self, framework_id: str, role: str, agent_id: str,
                          released: Resources, acquired: Resources) -> None:
        """An offer operation (RESERVE/UNRESERVE) turned ``released`` into ``acquired`` in
        what the framework holds on the agent; the agent's total comes with update_agent."""
        agent = self._books.agents.get(agent_id)
        if agent is None:
            return
        self._books.discharge(framework_id, role, agent, released, to_available=False)
        if acquired:
            amounts, unreserved, _ = acquired.quantities()
            framework = self._books.framework(framework_id)
            held = agent.held.get((framework_id, role))
            agent.held[(framework_id, role)] = acquired if held is None else held + acquired
            framework.held.add((role, agent_id))
            add_into(framework.alloc.setdefault(role, {}), amounts)
            self._tree.charge(role, amounts, unreserved)
        self._books.reset_available(agent)

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
        agent = self._books.agents.get(agent_id)
        if agent is None:
            return  # removing the agent released what was held there
        self._books.discharge(framework_id, role, agent, resources)
        framework = self._books.frameworks.get(framework_id)
        if framework is None or refuse_seconds is None or refuse_seconds <= 0 or not resources:
            return
        seconds = min(max(refuse_seconds, self._interval), MAX_REFUSE_SECONDS)
        key = (role, agent_id)
        live = [r for r in framework.refusals.get(key, ()) if r.expires > now]
        framework.refusals[key] = [*live, Refusal(resources, now + seconds)]

    # The cycle -----------------------------------------------------------------------------
    def allocate(self, now: float) -> list[Allocation]:
        return Cycle(self._books, minimum=self._minimum, excluded=self._excluded,
                     filter_gpus=self._filter_gpus, rng=self._random, now=now).run()

    # Introspection ---------------------------------------------------------------------------
    def role_allocation(self, role: str) -> dict[str, int]:
        """What the role's subtree is offered or allocated, in thousandths."""
        node = self._tree.get(role)
        return dict(node.alloc) if node is not None else {}



def _amounts(quantities: Resources | Mapping[str, int]) -> dict[str, int]:
    if isinstance(quantities, Resources):
        return quantities.scalars()
    return {name: max(0, int(amount)) for name, amount in quantities.items()}
