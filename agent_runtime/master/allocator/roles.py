"""The role tree: per-role books for hierarchical DRF and quota.

Roles are paths (``eng/web/frontend``); a node exists for every role that has subscribed
frameworks, allocations, reservations or quota, and for each of its ancestors::

    root ("")
    ├── eng            alloc = subtree allocation (what eng's DRF share is made of)
    │   ├── eng/web    own   = allocation of frameworks subscribed to eng/web itself
    │   └── eng/batch
    └── ads

Every node keeps its SUBTREE's allocation (DRF compares siblings by what their whole subtree
holds, as Mesos's hierarchical sorter does), the unreserved part of it, and the reservations made
to roles in the subtree. Quota consumption is Mesos's: reservations (even idle ones) plus the
unreserved allocation. Limits bound the subtree (a child never gets past an ancestor's limit);
a guarantee is worked towards by any framework in the subtree.
"""

from __future__ import annotations

from collections.abc import Mapping

from agent_runtime.master.allocator.quantities import Quantities, add_into, minus, sub_into
from agent_runtime.resources import Resources


class RoleNode:
    __slots__ = (
        "alloc", "chain", "children", "guarantee", "limit", "own", "parent", "path",
        "reserved", "subscribers", "unreserved",
    )

    def __init__(self, path: str, parent: RoleNode | None) -> None:
        self.path = path
        self.parent = parent
        self.children: dict[str, RoleNode] = {}
        # This node first, then each ancestor up to (not including) the root: the nodes whose
        # books an allocation to this role changes. Fixed for the node's life.
        self.chain: tuple[RoleNode, ...] = (
            (self, *parent.chain) if parent is not None and parent.path else (self,)
        )
        self.own: Quantities = {}
        self.alloc: Quantities = {}
        self.unreserved: Quantities = {}
        self.reserved: Quantities = {}
        self.guarantee: Quantities = {}
        self.limit: Quantities = {}  # empty: no limit; an absent name is not limited
        self.subscribers = 0  # frameworks subscribed to exactly this role

    def consumed(self) -> Quantities:
        """Quota consumption: reservations in the subtree + unreserved subtree allocation."""
        out = dict(self.reserved)
        add_into(out, self.unreserved)
        return out

    def limit_left(self) -> Quantities:
        """Per limited name, how much more the subtree may consume (0 when used up)."""
        consumed = self.consumed()
        return {name: max(0, limit - consumed.get(name, 0)) for name, limit in self.limit.items()}

    def idle(self) -> bool:
        return not (self.children or self.alloc or self.reserved or self.guarantee
                    or self.limit or self.subscribers)

    def __repr__(self) -> str:
        return f"RoleNode({self.path!r})"


class RoleTree:
    def __init__(self) -> None:
        self.root = RoleNode("", None)
        self.nodes: dict[str, RoleNode] = {}
        self.weights: dict[str, float] = {}
        self.guaranteed: set[str] = set()
        self.limited: set[str] = set()

    def get(self, path: str) -> RoleNode | None:
        return self.nodes.get(path)

    def node(self, path: str) -> RoleNode:
        """The node of ``path``, created (with its ancestors) when missing."""
        found = self.nodes.get(path)
        if found is not None:
            return found
        parent_path, _, _ = path.rpartition("/")
        parent = self.node(parent_path) if parent_path else self.root
        created = RoleNode(path, parent)
        parent.children[path] = created
        self.nodes[path] = created
        return created

    def prune(self, node: RoleNode) -> None:
        """Forget nodes that no longer hold anything, bottom up (roles come and go)."""
        current: RoleNode | None = node
        while current is not None and current.path and current.idle():
            parent = current.parent
            assert parent is not None
            del parent.children[current.path]
            del self.nodes[current.path]
            current = parent

    def weight(self, path: str) -> float:
        return self.weights.get(path, 1.0)

    # Books -------------------------------------------------------------------------------
    def charge(self, path: str, amounts: Mapping[str, int], unreserved: Mapping[str, int]) -> None:
        node = self.node(path)
        add_into(node.own, amounts)
        for member in node.chain:
            add_into(member.alloc, amounts)
            if unreserved:
                add_into(member.unreserved, unreserved)

    def discharge(self, path: str, amounts: Mapping[str, int],
                  unreserved: Mapping[str, int]) -> None:
        node = self.nodes.get(path)
        if node is None:
            return
        sub_into(node.own, amounts)
        for member in node.chain:
            sub_into(member.alloc, amounts)
            if unreserved:
                sub_into(member.unreserved, unreserved)
        if not node.alloc:
            self.prune(node)

    def track_reservations(self, total: Resources, sign: int) -> None:
        """Reservations count toward the reserving role's subtree consumption, idle or not."""
        for (name, reservations), value in total.items():
            if not reservations or not isinstance(value, int):
                continue
            node = self.node(reservations[-1].role)
            for member in node.chain:
                if sign > 0:
                    add_into(member.reserved, {name: value})
                else:
                    sub_into(member.reserved, {name: value})
            if sign < 0:
                self.prune(node)

    # Quota -------------------------------------------------------------------------------
    def set_quota(self, path: str, guarantee: Quantities, limit: Quantities) -> None:
        node = self.node(path)
        node.guarantee = {k: v for k, v in guarantee.items() if v > 0}
        node.limit = dict(limit)
        (self.guaranteed.add if node.guarantee else self.guaranteed.discard)(path)
        (self.limited.add if node.limit else self.limited.discard)(path)
        self.prune(node)

    def limit_headroom(self, node: RoleNode) -> Quantities | None:
        """How much more (per limited name) the role may consume under its own and its
        ancestors' limits; ``None`` when nothing in its ancestry has a limit."""
        out: Quantities | None = None
        for member in node.chain:
            if not member.limit:
                continue
            if out is None:
                out = member.limit_left()
                continue
            for name, left in member.limit_left().items():
                if name not in out or left < out[name]:
                    out[name] = left
        return out

    def unsatisfied(self, node: RoleNode) -> Quantities | None:
        """What the role may still take toward guarantees (stage one of the cycle).

        Every guaranteed node in the ancestry bounds it, name by name; ``None`` when none has a
        guarantee, ``{}`` when one of them is met.
        """
        out: Quantities | None = None
        for member in node.chain:
            if not member.guarantee:
                continue
            missing = minus(member.guarantee, member.consumed())
            if out is None:
                out = missing
            else:
                out = {n: min(v, missing[n]) for n, v in out.items() if n in missing}
        return out

    def required_headroom(self) -> Quantities:
        """Unreserved resources to hold back for unmet guarantees: the sum over the topmost
        guaranteed roles of ``guarantee - consumed`` (a nested guarantee is part of its
        ancestor's, so it is not counted twice)."""
        out: Quantities = {}
        for path in self.guaranteed:
            node = self.nodes[path]
            if any(member.guarantee for member in node.chain[1:]):
                continue
            add_into(out, minus(node.guarantee, node.consumed()))
        return out
