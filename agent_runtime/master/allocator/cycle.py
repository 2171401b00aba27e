"""One allocation cycle: Mesos's ``HierarchicalAllocatorProcess::__generateOffers``.

Agents are visited in random order. For each agent, roles come in hierarchical DRF order and,
inside a role, frameworks in DRF order; a framework gets what of the agent the role may use
(unreserved, or reserved to the role or an ancestor) unless it is suppressed, inactive, not
GPU-capable for a GPU agent, or has refused as much before. Two stages:

1. roles whose quota guarantee is unmet (their own or an ancestor's) get unreserved resources
   toward it, plus what else the agent has within their limits and the headroom;
2. every role shares what is left, within its limits, while enough unreserved resources stay
   back for the guarantees still unmet (``required headroom = sum(guarantee - consumed)``).

What makes it fast (perf-anchors.md section 1): orders are built once per cycle and then only the
role and framework that just got an offer move (:mod:`order`), after the agent is done, which is
also Mesos's semantics (it sorts once per agent); a role that cannot take anything more (at its
limit, guarantee met) leaves the order for the rest of the cycle instead of being skipped on
every agent; an agent with nothing allocatable is never walked; and the common offer, a whole
agent to one framework, uses the agent's precomputed quantities and no ``Resources`` arithmetic.
"""

from __future__ import annotations

import random

from agent_runtime.master.allocator.order import Level, RoleOrder
from agent_runtime.master.allocator.quantities import (
    MinAllocatable,
    Quantities,
    add_into,
    dominant_share,
    minus,
    plus,
    sub_into,
)
from agent_runtime.master.allocator.roles import RoleNode
from agent_runtime.master.allocator.state import (
    AgentState,
    Allocation,
    Books,
    FrameworkState,
)
from agent_runtime.resources import Key, Resources, Value

# An offer: the resources, their scalar quantities, the unreserved ones, and whether it is all
# the role may have of the agent (then nothing is left for the role's other frameworks).
Offer = tuple[Resources, Quantities, Quantities, bool]
Touched = list[tuple[RoleNode, FrameworkState]]


class Cycle:
    def __init__(self, books: Books, *, minimum: MinAllocatable, excluded: frozenset[str],
                 filter_gpus: bool, rng: random.Random, now: float) -> None:
        self.books = books
        self.tree = books.tree
        self.minimum = minimum
        self.filter_gpus = filter_gpus
        self.rng = rng
        self.now = now
        # Names that take part in fair sharing (--fair_sharing_excluded_resource_names).
        self.totals = {n: v for n, v in books.total.items() if v > 0 and n not in excluded}
        self.eligible: dict[str, list[FrameworkState]] = {}
        self.framework_levels: dict[str, Level] = {}
        self.required: Quantities = {}  # headroom still owed to unmet guarantees
        self.headroom: Quantities = {}  # unreserved resources nobody holds, cluster-wide
        self.out: list[Allocation] = []
        self.index: dict[tuple[str, str, str], int] = {}

    # Shares --------------------------------------------------------------------------------
    def share_of(self, node: RoleNode) -> float:
        return dominant_share(node.alloc, self.totals) / self.tree.weight(node.path)

    def own_share_of(self, node: RoleNode) -> float:
        return dominant_share(node.own, self.totals)

    def frameworks_of(self, leaf: RoleNode) -> Level:
        level = self.framework_levels.get(leaf.path)
        if level is None:
            path, totals = leaf.path, self.totals
            level = Level([(dominant_share(f.alloc.get(path, {}), totals), f.id)
                           for f in self.eligible[path]])
            self.framework_levels[path] = level
        return level

    def allows(self, agent: AgentState) -> bool:
        return self.minimum.allows(agent.amounts, bool(agent.available))

    # The cycle -----------------------------------------------------------------------------
    def run(self) -> list[Allocation]:
        books, tree = self.books, self.tree
        for framework in books.frameworks.values():
            if framework.active:
                for role in framework.roles:
                    if role not in framework.suppressed:
                        self.eligible.setdefault(role, []).append(framework)
        if not self.eligible:
            return []
        agents = [a for a in books.agents.values() if a.active and self.allows(a)]
        if not agents:
            return []
        self.rng.shuffle(agents)
        leaves = [tree.node(role) for role in self.eligible]
        if tree.guaranteed:
            self.required = tree.required_headroom()
            for agent in books.agents.values():
                add_into(self.headroom, agent.unreserved)
            # Met topmost guarantees leave every guarantee below them met too (a role's
            # guarantee is bounded by its guaranteed ancestors'): no role left for stage one.
            first = [leaf for leaf in leaves if tree.unsatisfied(leaf)] if self.required else []
            if first:
                self.stage_one(RoleOrder(first, self.share_of, self.own_share_of), agents)
                # Stage one favours the front of the list; reshuffle to spread that (Mesos).
                agents = [a for a in agents if self.allows(a)]
                self.rng.shuffle(agents)
        if tree.limited:
            names = list(books.total)
            open_leaves = [leaf for leaf in leaves if self.can_grow(leaf, names)]
            opened = RoleOrder(open_leaves, self.share_of, self.own_share_of)
            # Roles at their limit (now or later in the cycle) still get reservations made to
            # them: agents with reservations walk every role, the others only the open ones.
            everyone = RoleOrder(leaves, self.share_of, self.own_share_of) \
                if any(a.owners for a in agents) else opened
        else:
            opened = everyone = RoleOrder(leaves, self.share_of, self.own_share_of)
        if opened or everyone:
            self.stage_two(opened, everyone, agents)
        return self.out

    def can_grow(self, leaf: RoleNode, names: list[str]) -> bool:
        headroom = self.tree.limit_headroom(leaf)
        return headroom is None or self.minimum.fits_under(headroom, names)

    # Stage one: guarantees ------------------------------------------------------------------
    def stage_one(self, order: RoleOrder, agents: list[AgentState]) -> None:
        for agent in agents:
            if not order:
                return
            if not self.allows(agent):
                continue
            touched: Touched = []
            for leaf in order.walk():
                self.guarantee_role(leaf, agent, touched)
                if not self.allows(agent):
                    break
            for leaf, framework in touched:
                self.settle(leaf, framework, (order,))
                for member in leaf.chain:
                    if member.guarantee and not minus(member.guarantee, member.consumed()):
                        order.discard(member)

    def guarantee_role(self, leaf: RoleNode, agent: AgentState, touched: Touched) -> None:
        made = self.guarantee_offer(leaf, agent)
        if made is None:
            return
        gated = agent.has_gpus and self.filter_gpus
        frameworks = self.books.frameworks
        for _, framework_id in self.frameworks_of(leaf).keys:
            framework = frameworks[framework_id]
            if gated and not framework.gpu_aware:
                continue
            offer, amounts, unreserved, toward = made
            if framework.refusals and framework.refused(leaf.path, agent.id, offer, self.now):
                continue
            if framework.minimums and framework.too_small(leaf.path, amounts, bool(offer)):
                continue
            self.give(framework, leaf, agent, offer, amounts, unreserved)
            sub_into(self.required, toward)
            touched.append((leaf, framework))
            made = self.guarantee_offer(leaf, agent)
            if made is None:
                return

    def guarantee_offer(self, leaf: RoleNode, agent: AgentState
                        ) -> tuple[Resources, Quantities, Quantities, Quantities] | None:
        missing = self.tree.unsatisfied(leaf)
        if not missing:
            return None
        base = self.usable(leaf, agent)
        quota = {name: value for (name, reservations), value in base.items()
                 if not reservations and isinstance(value, int)}
        toward = {name: min(value, missing[name]) for name, value in quota.items()
                  if name in missing}
        if not toward:
            return None  # nothing here moves the role toward its guarantee
        # Beyond the guarantee: what else the agent has, within limits and the headroom.
        extra = minus(quota, toward)
        if extra:
            limits = self.tree.limit_headroom(leaf)
            surplus = minus(self.headroom, self.required) if self.required else None
            for name in list(extra):
                amount = extra[name]
                if limits is not None and name in limits:
                    amount = min(amount, limits[name] - toward.get(name, 0))
                if surplus is not None:
                    amount = min(amount, surplus.get(name, 0))
                if amount > 0:
                    extra[name] = amount
                else:
                    del extra[name]
        scalars = plus(toward, extra)
        items: dict[Key, Value] = {}
        for key, value in base.items():
            name, reservations = key
            if not isinstance(value, int):
                items[key] = value  # ports and other non-scalars come along
            elif not reservations:
                wanted = scalars.get(name, 0)
                if wanted:
                    items[key] = wanted
            elif reservations[-1].role == leaf.path:
                items[key] = value  # the role's own reservations (not an ancestor's)
        offer = Resources(items)
        amounts, unreserved, _ = offer.quantities()
        if not self.minimum.allows(amounts, bool(offer)):
            return None
        return offer, amounts, unreserved, toward

    # Stage two: fair shares ----------------------------------------------------------------
    def stage_two(self, opened: RoleOrder, everyone: RoleOrder,
                  agents: list[AgentState]) -> None:
        # Both orders see every share change; only `opened` loses roles that hit a limit.
        orders = (opened,) if opened is everyone else (opened, everyone)
        limited = bool(self.tree.limited)
        names = list(self.books.total)
        for agent in agents:
            if not self.allows(agent):
                continue
            order = everyone if agent.owners else opened
            if not order:
                continue
            touched: Touched = []
            for leaf in order.walk():
                self.share_role(leaf, agent, touched)
                if not self.allows(agent):
                    break
            for leaf, framework in touched:
                self.settle(leaf, framework, orders)
                if limited:
                    for member in leaf.chain:
                        if member.limit and not self.minimum.fits_under(member.limit_left(),
                                                                        names):
                            opened.discard(member)

    def share_role(self, leaf: RoleNode, agent: AgentState, touched: Touched) -> None:
        made = self.fair_offer(leaf, agent)
        if made is None:
            return
        gated = agent.has_gpus and self.filter_gpus
        frameworks, now, path = self.books.frameworks, self.now, leaf.path
        for _, framework_id in self.frameworks_of(leaf).keys:
            framework = frameworks[framework_id]
            if gated and not framework.gpu_aware:
                continue
            offer, amounts, unreserved, whole = made
            if framework.refusals and framework.refused(path, agent.id, offer, now):
                continue
            if framework.minimums and framework.too_small(path, amounts, bool(offer)):
                continue
            self.give(framework, leaf, agent, offer, amounts, unreserved)
            touched.append((leaf, framework))
            if whole:
                return
            made = self.fair_offer(leaf, agent)
            if made is None:
                return

    def fair_offer(self, leaf: RoleNode, agent: AgentState) -> Offer | None:
        base = self.usable(leaf, agent)
        limits = self.tree.limit_headroom(leaf) if self.tree.limited else None
        surplus = minus(self.headroom, self.required) if self.required else None
        if limits is None and surplus is None:
            if base is agent.available:
                amounts, unreserved = agent.amounts, agent.unreserved
            else:
                amounts, unreserved, _ = base.quantities()
            if not self.minimum.allows(amounts, bool(base)):
                return None
            return base, amounts, unreserved, True
        # Shrink the unreserved scalars to the role's limits and to the surplus headroom.
        items: dict[Key, Value] = {}
        shrunk = False
        present = capped_by_limit = 0
        for key, value in base.items():
            name, reservations = key
            if reservations or not isinstance(value, int):
                items[key] = value
                continue
            present += 1
            amount = value
            if limits is not None and name in limits and limits[name] < amount:
                amount = limits[name]
                if amount <= 0:
                    capped_by_limit += 1
            if surplus is not None:
                amount = min(amount, surplus.get(name, 0))
            if amount != value:
                shrunk = True
            if amount > 0:
                items[key] = amount
        if present and capped_by_limit == present:
            # At its limit the role gets no more unreserved resources, ports included.
            for key in [k for k, v in items.items() if not k[1] and not isinstance(v, int)]:
                del items[key]
                shrunk = True
        offer = Resources(items) if shrunk else base
        amounts, unreserved, _ = offer.quantities()
        if not self.minimum.allows(amounts, bool(offer)):
            return None
        return offer, amounts, unreserved, not shrunk

    # Shared steps --------------------------------------------------------------------------
    def usable(self, leaf: RoleNode, agent: AgentState) -> Resources:
        """What of the agent the role may be offered: unreserved, or reserved to it or to an
        ancestor (``eng``'s reservations serve ``eng/web``), never another role's."""
        available = agent.available
        path = leaf.path
        for owner in agent.owners:
            if owner != path and not path.startswith(owner + "/"):
                return available.allocatable_to(path)
        return available

    def give(self, framework: FrameworkState, leaf: RoleNode, agent: AgentState,
             offer: Resources, amounts: Quantities, unreserved: Quantities) -> None:
        self.books.charge(framework, leaf.path, agent, offer, amounts, unreserved)
        if self.headroom:
            sub_into(self.headroom, unreserved)
        key = (framework.id, leaf.path, agent.id)
        at = self.index.get(key)
        if at is None:  # one offer per (framework, role, agent): stage two adds to stage one's
            self.index[key] = len(self.out)
            self.out.append(Allocation(framework.id, leaf.path, agent.id, offer))
        else:
            before = self.out[at]
            self.out[at] = Allocation(framework.id, leaf.path, agent.id, before.resources + offer)

    def settle(self, leaf: RoleNode, framework: FrameworkState,
               orders: tuple[RoleOrder, ...]) -> None:
        """After the agent: the framework and role that got an offer move to their new places."""
        path = leaf.path
        self.framework_levels[path].update(
            framework.id, dominant_share(framework.alloc.get(path, {}), self.totals))
        for order in orders:
            order.update(leaf)

