"""Worker nodes made from offers, and the rules an offer must pass before it is cached.

Seed 002 runs a cluster manager on top of the framework: every host that offers resources
becomes a worker node (named after the offer's hostname, labelled with the agent's attributes),
and only an offer that passes these rules is cached (the rest are declined at once):

1. it comes from a known worker node: one registered already, or, with ``auto_register``,
   registered now from this offer (without it, hosts that are no workers are declined);
2. the executor ids in it are none or ours: an offer naming another executor of this framework
   (an old incarnation's, say) would place our tasks next to something we do not manage;
3. the node's attributes are the ones it registered with: a changed attribute set means the
   node is no longer what selectors matched, so the node is invalidated (its cached offers are
   dropped), re-registered with the new labels, and this offer declined; the next offer from it
   is valid again. An agent id changing under the same hostname (the agent restarted with a new
   id) invalidates the node the same way.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from agent_runtime.scheduler.offers import CachedOffer


@dataclass(slots=True)
class Node:
    name: str
    agent_id: str
    labels: dict[str, str]
    generation: int = 0  # bumped each time the node is invalidated and re-registered


class Verdict(enum.Enum):
    VALID = "valid"
    NOT_A_WORKER = "offer from a host that is not a worker node"
    FOREIGN_EXECUTOR = "offer names an executor that is not ours"
    NODE_CHANGED = "the node's attributes or agent changed: node invalidated"


@dataclass
class NodeRegistry:
    executor_ids: frozenset[str] = frozenset()
    auto_register: bool = True
    nodes: dict[str, Node] = field(default_factory=dict)

    def register(self, name: str, agent_id: str, labels: dict[str, str]) -> Node:
        node = Node(name, agent_id, dict(labels))
        self.nodes[name] = node
        return node

    def remove(self, name: str) -> Node | None:
        return self.nodes.pop(name, None)

    def check(self, offer: CachedOffer) -> Verdict:
        """Judge an offer (registering its host as a node where that is the rule)."""
        if offer.executor_ids and not offer.executor_ids <= self.executor_ids:
            return Verdict.FOREIGN_EXECUTOR
        node = self.nodes.get(offer.hostname)
        if node is None:
            if not self.auto_register:
                return Verdict.NOT_A_WORKER
            self.register(offer.hostname, offer.agent_id, offer.attributes)
            return Verdict.VALID
        if node.labels != offer.attributes or node.agent_id != offer.agent_id:
            node.labels = dict(offer.attributes)
            node.agent_id = offer.agent_id
            node.generation += 1
            return Verdict.NODE_CHANGED
        return Verdict.VALID

    def matching(self, selector: dict[str, str]) -> Iterable[Node]:
        return (n for n in self.nodes.values()
                if all(n.labels.get(k) == v for k, v in selector.items()))


__all__ = ["Node", "NodeRegistry", "Verdict"]
