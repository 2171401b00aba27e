"""Per-framework offer filters (FrameworkInfo.offer_filters): an offer smaller than what the
framework asked for is not made to it, and the resources stay for whoever can use them."""

from __future__ import annotations

from agent_runtime.master.allocator import Allocator
from agent_runtime.resources import parse


def test_a_framework_is_not_offered_less_than_its_minimum() -> None:
    allocator = Allocator(seed=3)
    allocator.add_agent("a1", parse("cpus:0.5;mem:256"))
    allocator.add_framework("picky", ["*"])
    allocator.set_offer_filters("picky", {"*": [{"cpus": 1000}]})
    assert allocator.allocate(0.0) == []  # half a cpu is below its one cpu

    allocator.add_framework("modest", ["*"])
    (allocation,) = allocator.allocate(0.0)
    assert allocation.framework_id == "modest"


def test_any_one_alternative_held_in_full_is_enough() -> None:
    allocator = Allocator(seed=3)
    allocator.add_agent("a1", parse("cpus:0.5;mem:2048"))
    allocator.add_framework("f", ["*"])
    allocator.set_offer_filters("f", {"*": [{"cpus": 1000}, {"mem": 1024_000}]})
    (allocation,) = allocator.allocate(0.0)
    assert allocation.resources == parse("cpus:0.5;mem:2048")


def test_a_role_without_a_filter_keeps_the_master_minimum() -> None:
    allocator = Allocator(seed=3)
    allocator.add_agent("a1", parse("cpus:0.5;mem:256"))
    allocator.add_framework("f", ["web", "batch"])
    allocator.set_offer_filters("f", {"web": [{"cpus": 1000}]})
    (allocation,) = allocator.allocate(0.0)
    assert allocation.role == "batch"
