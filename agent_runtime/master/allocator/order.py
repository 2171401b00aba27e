"""Hierarchical DRF order, kept sorted incrementally during one allocation cycle.

A :class:`Level` holds siblings sorted by ``(share, name)`` (ties break on the name, so a run is
reproducible). Only the client that just received an offer changes its share, so after an offer
the cycle moves that one entry (a bisect and a memmove) instead of sorting everything again: at
10,000 agents that is the difference between microseconds and a full sort per agent.

A :class:`RoleOrder` arranges the roles to serve as Mesos's hierarchical sorter does: the
children of each role are ordered by the weighted share of their whole subtree, and a role that
has both frameworks and sub-roles serves its own frameworks as a virtual leaf (Mesos's ``.``
node) inside its level, with weight 1. Walking it depth first yields the roles in DRF order.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Iterator

from agent_runtime.master.allocator.roles import RoleNode

Key = tuple[float, str]


class Level:
    """Clients sorted by (share, name); the list is what a walk iterates."""

    __slots__ = ("current", "keys")

    def __init__(self, entries: list[Key]) -> None:
        entries.sort()
        self.keys = entries
        self.current = {name: (share, name) for share, name in entries}

    def update(self, name: str, share: float) -> None:
        old = self.current.get(name)
        if old is None or old[0] == share:
            return
        keys = self.keys
        del keys[bisect_left(keys, old)]
        new = (share, name)
        insort(keys, new)
        self.current[name] = new

    def remove(self, name: str) -> None:
        old = self.current.pop(name, None)
        if old is not None:
            del self.keys[bisect_left(self.keys, old)]


class RoleOrder:
    """The roles to serve (``leaves``: roles with frameworks to offer to) in DRF order.

    ``share_of(node)`` is a node's weighted subtree share; ``own_share_of(node)`` the share of
    what its own frameworks hold (the virtual leaf's).
    """

    def __init__(self, leaves: Iterable[RoleNode], share_of: Callable[[RoleNode], float],
                 own_share_of: Callable[[RoleNode], float]) -> None:
        self.share_of = share_of
        self.own_share_of = own_share_of
        self.leaves: dict[str, RoleNode] = {}
        entries: dict[str, dict[str, Key]] = {"": {}}
        for leaf in leaves:
            self.leaves[leaf.path] = leaf
            node = leaf
            while node.parent is not None:
                level = entries.setdefault(node.parent.path, {})
                if node.path in level:
                    break  # its ancestors are in already
                level[node.path] = (share_of(node), node.path)
                node = node.parent
        for path, leaf in self.leaves.items():
            if path in entries:  # a role with sub-roles serves its own frameworks virtually
                entries[path][path] = (own_share_of(leaf), path)
        self.levels = {path: Level(list(level.values())) for path, level in entries.items()}
        self.root = self.levels[""]

    def __bool__(self) -> bool:
        return bool(self.root.keys)

    @property
    def flat(self) -> bool:
        """No hierarchy among the roles served: the root level is the whole order."""
        return len(self.levels) == 1

    def walk(self) -> Iterator[RoleNode]:
        """The roles in DRF order. Iterates the live lists: no update may happen mid-walk."""
        if len(self.levels) == 1:
            leaves = self.leaves
            return (leaves[name] for _, name in self.root.keys)
        return self._walk("")

    def _walk(self, path: str) -> Iterator[RoleNode]:
        levels = self.levels
        for _, name in levels[path].keys:
            if name != path and name in levels:
                yield from self._walk(name)
            else:
                yield self.leaves[name]

    def update(self, leaf: RoleNode) -> None:
        """``leaf``'s allocation changed: move it and its ancestors to their new places."""
        levels = self.levels
        if leaf.path in levels and leaf.path in self.leaves:
            levels[leaf.path].update(leaf.path, self.own_share_of(leaf))
        node = leaf
        while node.parent is not None:
            level = levels.get(node.parent.path)
            if level is None:
                return
            level.update(node.path, self.share_of(node))
            node = node.parent

    def discard(self, node: RoleNode) -> None:
        """Stop serving ``node`` and its whole subtree for the rest of the cycle."""
        path = node.path
        if path in self.levels:
            prefix = path + "/"
            for sub in [p for p in self.levels if p == path or p.startswith(prefix)]:
                del self.levels[sub]
            for sub in [p for p in self.leaves if p.startswith(prefix)]:
                del self.leaves[sub]
        self.leaves.pop(path, None)
        current: RoleNode = node
        while current.parent is not None:
            level = self.levels.get(current.parent.path)
            if level is None:
                return
            level.remove(current.path)
            parent = current.parent
            if level.keys or parent.parent is None:
                return
            del self.levels[parent.path]  # nothing left below it: it leaves its own level too
            current = parent
