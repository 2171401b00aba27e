"""Seed 002's offer rules with a fake clock: the 5 s TTL, the delayed queue, rescinds, node
registration from offers and the three validity rules (known worker, executor ids, changed
attributes)."""

from __future__ import annotations

from dataclasses import dataclass

from agent_runtime.scheduler.cache import OfferCache
from agent_runtime.scheduler.nodes import NodeRegistry, Verdict
from agent_runtime.scheduler.offers import CachedOffer, OfferState, OfferStore


@dataclass
class FakeClock:
    now: float = 100.0

    def __call__(self) -> float:
        return self.now


def offer(offer_id: str, host: str = "h1", *, agent: str = "", cpus: float = 1.0,
          executors: tuple[str, ...] = (), **attributes: str) -> CachedOffer:
    return CachedOffer(offer_id, agent or f"A-{host}", host, int(cpus * 1000), 512_000,
                       ((31000, 31099),), dict(attributes), frozenset(executors))


def cache(clock: FakeClock, **nodes: object) -> OfferCache:
    return OfferCache(OfferStore(clock=clock), NodeRegistry(**nodes))  # type: ignore[arg-type]


def test_an_offer_expires_after_five_seconds_and_is_handed_back_once() -> None:
    clock = FakeClock()
    c = cache(clock)
    assert c.receive([offer("o1")]) == []
    clock.now += 4.9
    assert c.expire() == [] and [o.id for o in c.store.live()] == ["o1"]
    clock.now += 0.1
    assert [o.id for o in c.expire()] == ["o1"]  # to be declined
    assert c.store.state("o1") is OfferState.EXPIRED and list(c.store.live()) == []
    assert c.expire() == []  # never declined twice
    assert c.store.acquire("o1") is None


def test_the_delayed_queue_hands_offers_back_in_deadline_order() -> None:
    clock = FakeClock()
    c = cache(clock)
    c.receive([offer("o1", "h1")])
    clock.now += 2
    c.receive([offer("o2", "h2")])
    clock.now += 1
    c.receive([offer("o3", "h3")])
    clock.now += 2.5  # o1 is 5.5 s old, o2 3.5 s, o3 2.5 s
    assert [o.id for o in c.expire()] == ["o1"]
    clock.now += 2
    assert [o.id for o in c.expire()] == ["o2"]
    assert [o.id for o in c.store.live()] == ["o3"]


def test_a_claimed_offer_is_not_expired_and_a_released_one_keeps_its_deadline() -> None:
    clock = FakeClock()
    c = cache(clock)
    c.receive([offer("o1")])
    assert c.store.acquire("o1") is not None
    assert c.store.acquire("o1") is None  # one claimant at a time
    clock.now += 6
    assert c.expire() == []  # the claimant decides
    c.store.release("o1")
    assert c.store.acquire("o1") is None  # past its TTL: stale, not reusable
    assert c.store.state("o1") is OfferState.EXPIRED


def test_a_duplicate_delivery_does_not_extend_the_ttl() -> None:
    clock = FakeClock()
    c = cache(clock)
    c.receive([offer("o1")])
    clock.now += 4
    c.receive([offer("o1")])
    clock.now += 1
    assert [o.id for o in c.expire()] == ["o1"]


def test_a_rescinded_offer_cannot_be_claimed_and_lingers_then_goes() -> None:
    clock = FakeClock()
    c = cache(clock)
    c.receive([offer("o1")])
    assert c.rescind("o1") is True
    assert c.store.acquire("o1") is None and c.store.state("o1") is OfferState.RESCINDED
    assert c.rescind("o1") is False  # a late duplicate RESCIND is recognised
    clock.now += 121
    assert c.expire() == [] and c.store.state("o1") is None


def test_a_rescind_of_a_claimed_offer_makes_its_take_fail() -> None:
    clock = FakeClock()
    c = cache(clock)
    c.receive([offer("o1")])
    c.store.acquire("o1")
    assert c.rescind("o1") is True
    assert c.store.take("o1") is None  # the launch must not go out on it


def test_every_offering_host_becomes_a_worker_node() -> None:
    c = cache(FakeClock())
    c.receive([offer("o1", "h1", zone="a"), offer("o2", "h2", zone="b")])
    assert {n: node.labels for n, node in c.nodes.nodes.items()} == {
        "h1": {"zone": "a"}, "h2": {"zone": "b"}}
    assert [n.name for n in c.nodes.matching({"zone": "b"})] == ["h2"]


def test_offers_from_hosts_that_are_not_workers_are_declined() -> None:
    c = cache(FakeClock(), auto_register=False)
    c.nodes.register("h1", "A-h1", {})
    declined = c.receive([offer("o1", "h1"), offer("o2", "stranger")])
    assert [o.id for o in declined] == ["o2"]
    assert [o.id for o in c.store.live()] == ["o1"]
    assert c.declined[Verdict.NOT_A_WORKER] == 1


def test_executor_ids_in_an_offer_must_be_none_or_ours() -> None:
    c = cache(FakeClock(), executor_ids=frozenset({"pods-executor"}))
    declined = c.receive([
        offer("none", "h1"),
        offer("ours", "h2", executors=("pods-executor",)),
        offer("foreign", "h3", executors=("pods-executor", "someone-else")),
    ])
    assert [o.id for o in declined] == ["foreign"]
    assert c.declined[Verdict.FOREIGN_EXECUTOR] == 1
    assert "h3" not in c.nodes.nodes  # never registered from an offer it refused


def test_a_changed_attribute_set_invalidates_the_node() -> None:
    clock = FakeClock()
    c = cache(clock)
    c.receive([offer("o1", "h1", zone="a"), offer("o2", "h2", zone="a")])
    declined = c.receive([offer("o3", "h1", zone="b")])
    # The node's cached offer goes with the offer that showed the change.
    assert [o.id for o in declined] == ["o1", "o3"]
    assert c.nodes.nodes["h1"].labels == {"zone": "b"} and c.nodes.nodes["h1"].generation == 1
    assert [o.id for o in c.store.live()] == ["o2"]
    # Re-registered with its new labels: the next offer from it is valid again.
    assert c.receive([offer("o4", "h1", zone="b")]) == []
    assert [n.name for n in c.nodes.matching({"zone": "b"})] == ["h1"]


def test_an_agent_restarted_under_a_new_id_invalidates_its_node() -> None:
    c = cache(FakeClock())
    c.receive([offer("o1", "h1", agent="A1")])
    declined = c.receive([offer("o2", "h1", agent="A2")])
    assert [o.id for o in declined] == ["o1", "o2"]
    assert c.nodes.nodes["h1"].agent_id == "A2"


def test_a_lost_agent_takes_its_node_and_offers() -> None:
    c = cache(FakeClock())
    c.receive([offer("o1", "h1"), offer("o2", "h2")])
    assert [o.id for o in c.agent_lost("A-h1")] == ["o1"]
    assert set(c.nodes.nodes) == {"h2"}
