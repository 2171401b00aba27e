"""Placing pods on cached offers: a pluggable strategy, and seed 002's first-come-first-served.

A :class:`Placement` gets the pods waiting (in queue order) and the live offers (in arrival
order) and says which pods go on which offer; what it does not place waits for more offers.
:class:`FirstComeFirstServed` takes each pod in turn and gives it the first offer that passes
the four checks of seed 002, in this order:

1. node: the pod names this node, or its node selector matches the node's labels;
2. resources: the offer still holds the pod's cpus and memory;
3. ports: every host port the pod asks for is in the offer's port ranges and not taken by a pod
   placed on the same node in this round;
4. executor: where our executor does not run on the node yet, the offer also has room for it
   (the first pod on a node pays for the executor every later pod there shares).

Several pods may share one offer; what each takes is subtracted as it is placed. Speed (10,000
pods over 1,000 offers): offers only shrink while a round places, so a pod shape (resources,
ports, node name, selector) that failed on offers before index *i* fails there again, and the
next pod of that shape starts at *i*. The one thing that grows an offer's room is our executor
arriving on its node (later pods need not pay for it), so that rewinds the hints to the node's
earliest offer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from agent_runtime.scheduler.offers import CachedOffer

Shape = tuple[int, int, tuple[int, ...], str | None, tuple[tuple[str, str], ...]]


@dataclass(frozen=True, slots=True)
class PodRequest:
    """What placement needs of a pod (the pod example builds these from its specs)."""

    name: str
    cpus: int  # milli cpus, all containers together
    mem: int  # milli megabytes
    host_ports: tuple[int, ...] = ()
    node_name: str | None = None
    node_selector: tuple[tuple[str, str], ...] = ()

    def shape(self) -> Shape:
        return (self.cpus, self.mem, self.host_ports, self.node_name, self.node_selector)


@dataclass(frozen=True, slots=True)
class ExecutorRoom:
    """Our executor: its id (an offer naming it means it runs there) and what it needs."""

    executor_id: str
    cpus: int = 0
    mem: int = 0


@dataclass
class Slot:
    """One offer while a round places pods on it: what is left of it."""

    offer: CachedOffer
    cpus: int
    mem: int
    used_ports: set[int] = field(default_factory=set)
    pods: list[PodRequest] = field(default_factory=list)
    executor_here: bool = False  # this slot pays for our executor


@dataclass
class Placed:
    """A round's result: pods by offer id (offers with none are not listed), and the rest."""

    assignments: dict[str, list[PodRequest]] = field(default_factory=dict)
    slots: dict[str, Slot] = field(default_factory=dict)
    unplaced: list[PodRequest] = field(default_factory=list)


class Placement(Protocol):
    def place(self, pods: Sequence[PodRequest], offers: Sequence[CachedOffer]) -> Placed: ...


# The four checks, each on its own so a strategy can reuse or reorder them.
def fits_node(pod: PodRequest, offer: CachedOffer) -> bool:
    if pod.node_name is not None and pod.node_name != offer.hostname:
        return False
    attributes = offer.attributes
    return all(attributes.get(key) == value for key, value in pod.node_selector)


def fits_resources(pod: PodRequest, slot: Slot) -> bool:
    return pod.cpus <= slot.cpus and pod.mem <= slot.mem


def fits_ports(pod: PodRequest, slot: Slot) -> bool:
    for port in pod.host_ports:
        if port in slot.used_ports:
            return False
        if not any(begin <= port <= end for begin, end in slot.offer.ports):
            return False
    return len(set(pod.host_ports)) == len(pod.host_ports)


def fits_executor(pod: PodRequest, slot: Slot, executor: ExecutorRoom, running: bool) -> bool:
    if running:
        return True
    return pod.cpus + executor.cpus <= slot.cpus and pod.mem + executor.mem <= slot.mem


class FirstComeFirstServed:
    def __init__(self, executor: ExecutorRoom) -> None:
        self.executor = executor

    def place(self, pods: Sequence[PodRequest], offers: Sequence[CachedOffer]) -> Placed:
        executor = self.executor
        slots = [Slot(o, o.cpus, o.mem) for o in offers]
        by_host: dict[str, list[int]] = {}
        running: set[str] = set()  # hosts where our executor runs or is placed this round
        for index, offer in enumerate(offers):
            by_host.setdefault(offer.hostname, []).append(index)
            if executor.executor_id in offer.executor_ids:
                running.add(offer.hostname)
        hints: dict[Shape, int] = {}
        result = Placed()
        for pod in pods:
            shape = pod.shape()
            candidates: Sequence[int]
            if pod.node_name is not None:
                candidates = by_host.get(pod.node_name, ())
                start = 0
            else:
                candidates = range(len(slots))
                start = hints.get(shape, 0)
            chosen = None
            position = start
            for position in range(start, len(candidates)):
                slot = slots[candidates[position]]
                host = slot.offer.hostname
                if (fits_node(pod, slot.offer) and fits_resources(pod, slot)
                        and fits_ports(pod, slot)
                        and fits_executor(pod, slot, executor, host in running)):
                    chosen = slot
                    break
            else:
                position = len(candidates)
            if pod.node_name is None:
                hints[shape] = position
            if chosen is None:
                result.unplaced.append(pod)
                continue
            host = chosen.offer.hostname
            if host not in running:
                running.add(host)
                chosen.executor_here = True
                chosen.cpus -= executor.cpus
                chosen.mem -= executor.mem
                # Other offers of this node need not hold the executor any more: they may
                # now fit shapes that failed on them, so no hint may start past them.
                first = by_host[host][0]
                for key, hint in hints.items():
                    if hint > first:
                        hints[key] = first
            chosen.cpus -= pod.cpus
            chosen.mem -= pod.mem
            chosen.used_ports.update(pod.host_ports)
            chosen.pods.append(pod)
            result.assignments.setdefault(chosen.offer.id, []).append(pod)
            result.slots[chosen.offer.id] = chosen
        return result


__all__ = [
    "ExecutorRoom",
    "FirstComeFirstServed",
    "Placed",
    "Placement",
    "PodRequest",
    "Slot",
    "fits_executor",
    "fits_node",
    "fits_ports",
    "fits_resources",
]
