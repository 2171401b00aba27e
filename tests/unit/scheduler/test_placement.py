"""First-come-first-served placement with seed 002's four checks: node name or selector,
cpu+memory, port conflicts, and room for our executor where none runs yet."""

from __future__ import annotations

from agent_runtime.scheduler.offers import CachedOffer
from agent_runtime.scheduler.placement import ExecutorRoom, FirstComeFirstServed, PodRequest

EXECUTOR = ExecutorRoom("pods-executor", cpus=100, mem=32_000)


def offer(offer_id: str, host: str, *, cpus: float = 1.0, mem: float = 1024,
          ports: tuple[tuple[int, int], ...] = ((31000, 31010),),
          executors: tuple[str, ...] = (), **labels: str) -> CachedOffer:
    return CachedOffer(offer_id, f"A-{host}", host, int(cpus * 1000), int(mem * 1000), ports,
                       dict(labels), frozenset(executors))


def pod(name: str, cpus: float = 0.1, mem: float = 64, *, ports: tuple[int, ...] = (),
        node: str | None = None, **selector: str) -> PodRequest:
    return PodRequest(name, int(cpus * 1000), int(mem * 1000), ports, node,
                      tuple(sorted(selector.items())))


def placed(pods: list[PodRequest], offers: list[CachedOffer],
           executor: ExecutorRoom = EXECUTOR) -> dict[str, list[str]]:
    result = FirstComeFirstServed(executor).place(pods, offers)
    out = {o: [p.name for p in ps] for o, ps in result.assignments.items()}
    out["-"] = [p.name for p in result.unplaced]
    return out


def test_pods_go_to_the_first_offer_that_fits_in_queue_order() -> None:
    offers = [offer("o1", "h1", cpus=0.5), offer("o2", "h2")]
    assert placed([pod("a", 0.3), pod("b", 0.3), pod("c", 0.3)], offers) == {
        "o1": ["a"], "o2": ["b", "c"], "-": []}


def test_node_name_and_selector() -> None:
    offers = [offer("o1", "h1", zone="a"), offer("o2", "h2", zone="b")]
    assert placed([pod("named", node="h2"), pod("selected", zone="b"),
                   pod("nowhere", zone="c"), pod("ghost", node="h9")], offers) == {
        "o2": ["named", "selected"], "-": ["nowhere", "ghost"]}


def test_cpu_and_memory_are_both_checked() -> None:
    offers = [offer("o1", "h1", cpus=4, mem=100), offer("o2", "h2", cpus=0.2, mem=4096)]
    assert placed([pod("mem-heavy", 0.1, 1024), pod("cpu-heavy", 1, 50),
                   pod("both", 1, 1024)], offers) == {
        "o2": ["mem-heavy"], "o1": ["cpu-heavy"], "-": ["both"]}


def test_a_host_port_is_given_once_per_node_and_only_from_the_offer() -> None:
    offers = [offer("o1", "h1"), offer("o2", "h2")]
    assert placed([pod("a", ports=(31005,)), pod("b", ports=(31005,)),
                   pod("c", ports=(31005,)), pod("d", ports=(8080,)),
                   pod("e", ports=(31001, 31001))], offers) == {
        "o1": ["a"], "o2": ["b"], "-": ["c", "d", "e"]}


def test_the_first_pod_on_a_node_pays_for_our_executor() -> None:
    # 0.2 cpus: one 0.1 pod plus the 0.1 executor, then nothing more.
    offers = [offer("o1", "h1", cpus=0.2)]
    assert placed([pod("a"), pod("b")], offers) == {"o1": ["a"], "-": ["b"]}
    # Where the offer says our executor already runs, the pods get all of it.
    offers = [offer("o1", "h1", cpus=0.2, executors=("pods-executor",))]
    assert placed([pod("a"), pod("b")], offers) == {"o1": ["a", "b"], "-": []}


def test_executor_room_on_one_offer_frees_the_other_offers_of_its_node() -> None:
    # h1 has two offers. x cannot take o1 (0.1 holds the pod but not the executor too), so it
    # takes o2 and brings the executor to h1; y, of the same shape, then fits o1, which it
    # skipped before: the first-fit hint must rewind to the node's first offer.
    offers = [offer("o1", "h1", cpus=0.1), offer("o2", "h1", cpus=0.25)]
    assert placed([pod("x"), pod("y")], offers) == {"o2": ["x"], "o1": ["y"], "-": []}


def test_placing_is_first_fit_even_with_many_shapes_and_offers() -> None:
    # The hints are a speed-up only: a brute-force first fit must agree.
    offers = [offer(f"o{i}", f"h{i % 7}", cpus=0.3 + (i % 5) / 10, mem=64 * (1 + i % 4),
                    executors=("pods-executor",) if i % 3 == 0 else ())
              for i in range(40)]
    pods = [pod(f"p{i}", 0.1 * (1 + i % 3), 32 * (1 + i % 5),
                ports=(31000 + i % 4,) if i % 2 else ()) for i in range(120)]
    result = FirstComeFirstServed(EXECUTOR).place(pods, offers)
    assert len(result.unplaced) < len(pods)
    left: dict[str, tuple[int, int, set[int]]] = {o.id: (o.cpus, o.mem, set()) for o in offers}
    running = {o.hostname for o in offers if "pods-executor" in o.executor_ids}
    expected: dict[str, list[str]] = {}
    for p in pods:
        for o in offers:
            cpus, mem, used = left[o.id]
            need_cpus = p.cpus + (0 if o.hostname in running else EXECUTOR.cpus)
            need_mem = p.mem + (0 if o.hostname in running else EXECUTOR.mem)
            if need_cpus <= cpus and need_mem <= mem and not set(p.host_ports) & used:
                if o.hostname not in running:
                    running.add(o.hostname)
                left[o.id] = (cpus - need_cpus, mem - need_mem, used | set(p.host_ports))
                expected.setdefault(o.id, []).append(p.name)
                break
    got = {o: [p.name for p in ps] for o, ps in result.assignments.items()}
    assert got == expected
