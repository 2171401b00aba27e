"""The pod framework: k8sm's scheduling loop on :mod:`agent_runtime.scheduler`.

Offers go into the library's cache (every offering host becomes a worker node; offers that
break a rule are declined at once; unused ones are declined when their TTL passes). Pods wait
in a FIFO queue; each scheduling round gives the queue and the live offers to the placement
strategy (first come first served by default) and launches what it placed, one ACCEPT per
offer. Each pod is one task group (LAUNCH_GROUP), every container a task named
``<pod>.<container>``, and every pod on a node runs in the one default executor this framework
keeps there (k8sm's executor per node): the first pod placed on a node pays for it (placement's
executor check), later ones find it named in the node's offers. A round runs when offers
arrive, when a pod is submitted, and on the expiry tick.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from dataclasses import dataclass, field

from agent_runtime.proto import mesos_pb2
from agent_runtime.scheduler.cache import OfferCache
from agent_runtime.scheduler.driver import Driver, Handler
from agent_runtime.scheduler.nodes import NodeRegistry
from agent_runtime.scheduler.offers import CachedOffer, OfferStore
from agent_runtime.scheduler.placement import (
    ExecutorRoom,
    FirstComeFirstServed,
    Placement,
    PodRequest,
)
from agent_runtime.task_states import TERMINAL_STATES
from examples.pods.spec import Container, PodSpec, SpecError

log = logging.getLogger(__name__)
EXECUTOR_ID = "pods-executor"
EXECUTOR_CPUS, EXECUTOR_MEM = 0.1, 32.0  # the default executor's own share, as Mesos's
NODE_EXECUTOR = ExecutorRoom(EXECUTOR_ID, cpus=round(EXECUTOR_CPUS * 1000),
                             mem=round(EXECUTOR_MEM * 1000))
DECLINE_REFUSE_SECONDS = 1.0


@dataclass
class Pod:
    spec: PodSpec
    phase: str = "Pending"  # Pending, Scheduled, Running, Succeeded, Failed
    node: str | None = None
    agent_id: str | None = None
    states: dict[str, str] = field(default_factory=dict)  # container -> TASK_*

    def as_json(self) -> dict[str, object]:
        return {"name": self.spec.name, "phase": self.phase, "node": self.node,
                "containers": {c.name: self.states.get(c.name, "") for c in
                               self.spec.containers}}


class PodFramework(Handler):
    def __init__(self, *, placement: Placement | None = None, ttl: float = 5.0,
                 max_pods: int = 10_000) -> None:
        store = OfferStore(ttl=ttl)
        self.cache = OfferCache(store, NodeRegistry(executor_ids=frozenset({EXECUTOR_ID})))
        self.placement = placement or FirstComeFirstServed(NODE_EXECUTOR)
        self.max_pods = max_pods
        self.pods: dict[str, Pod] = {}
        self.queue: collections.deque[str] = collections.deque()
        self.driver: Driver | None = None
        self._lock = asyncio.Lock()

    # Submissions -----------------------------------------------------------------------
    async def submit(self, spec: PodSpec) -> Pod:
        if spec.name in self.pods:
            raise SpecError(f"pod '{spec.name}' exists already")
        if len(self.pods) >= self.max_pods:
            raise SpecError(f"this framework holds {self.max_pods} pods at most")
        pod = Pod(spec)
        self.pods[spec.name] = pod
        self.queue.append(spec.name)
        await self.schedule()
        return pod

    # Events ----------------------------------------------------------------------------
    async def subscribed(self, driver: Driver, framework_id: str) -> None:
        self.driver = driver
        log.info("subscribed as %s", framework_id)

    async def offers(self, driver: Driver, offers: list[mesos_pb2.Offer]) -> None:
        self.driver = driver
        refused = self.cache.receive(offers)
        await self._decline(refused)
        await self.schedule()

    async def rescind(self, driver: Driver, offer_id: str) -> None:
        self.cache.rescind(offer_id)

    async def failure(self, driver: Driver, agent_id: str, executor_id: str) -> None:
        if agent_id and not executor_id:
            self.cache.agent_lost(agent_id)

    async def update(self, driver: Driver, status: mesos_pb2.TaskStatus) -> None:
        pod_name, _, container = status.task_id.value.partition(".")
        pod = self.pods.get(pod_name)
        if pod is None:
            return
        pod.states[container] = mesos_pb2.TaskState.Name(status.state)
        states = [pod.states.get(c.name) for c in pod.spec.containers]
        terminal = {mesos_pb2.TaskState.Name(s) for s in TERMINAL_STATES}
        if any(s in terminal and s != "TASK_FINISHED" for s in states):
            pod.phase = "Failed"
        elif all(s == "TASK_FINISHED" for s in states):
            pod.phase = "Succeeded"
        elif all(s in ("TASK_RUNNING", "TASK_FINISHED") for s in states):
            pod.phase = "Running"

    def known_tasks(self) -> list[tuple[str, str]]:
        return [(f"{p.spec.name}.{c.name}", p.agent_id or "") for p in self.pods.values()
                if p.agent_id and p.phase in ("Scheduled", "Running") for c in p.spec.containers]

    # Scheduling ------------------------------------------------------------------------
    async def tick(self) -> None:
        """The expiry tick: offers past their TTL go back, and the queue gets another try."""
        await self._decline(self.cache.expire())
        await self.schedule()

    async def schedule(self) -> None:
        """One round: place the queue on the live offers, launch what was placed."""
        if self.driver is None or self.driver.client is None:
            return
        async with self._lock:
            pending = [self.pods[name].spec.request() for name in self.queue]
            if not pending:
                return
            live = list(self.cache.store.live())
            if not live:
                return
            placed = self.placement.place(pending, live)
            launched: set[str] = set()
            for offer_id, requests in placed.assignments.items():
                offer = self.cache.store.acquire(offer_id)
                if offer is None:
                    continue  # rescinded or expired since the round began: they wait
                groups = [_group(self.pods[r.name].spec, offer) for r in requests]
                if self.cache.store.take(offer_id) is None:
                    continue
                await self.driver.accept([offer_id], groups)
                for request in requests:
                    pod = self.pods[request.name]
                    pod.phase, pod.node, pod.agent_id = "Scheduled", offer.hostname, offer.agent_id
                    launched.add(request.name)
            self.queue = collections.deque(n for n in self.queue if n not in launched)

    async def _decline(self, offers: list[CachedOffer]) -> None:
        if offers and self.driver is not None and self.driver.client is not None:
            await self.driver.decline([o.id for o in offers], DECLINE_REFUSE_SECONDS)


def _group(spec: PodSpec, offer: CachedOffer) -> mesos_pb2.Offer.Operation:
    """The pod as one task group for the node's default executor (the same ExecutorInfo every
    time: the master takes its resources once per node)."""
    operation = mesos_pb2.Offer.Operation(type=mesos_pb2.Offer.Operation.LAUNCH_GROUP)
    executor = operation.launch_group.executor
    executor.type = mesos_pb2.ExecutorInfo.DEFAULT
    executor.executor_id.value = EXECUTOR_ID
    executor.name = "pods node executor"
    for name, amount in (("cpus", EXECUTOR_CPUS), ("mem", EXECUTOR_MEM)):
        executor.resources.add(name=name, type=mesos_pb2.Value.SCALAR).scalar.value = amount
    operation.launch_group.task_group.tasks.extend(
        _task(spec, container, offer) for container in spec.containers)
    return operation


def _task(spec: PodSpec, container: Container, offer: CachedOffer) -> mesos_pb2.TaskInfo:
    task = mesos_pb2.TaskInfo(name=f"{spec.name}.{container.name}")
    task.task_id.value = task.name
    task.agent_id.value = offer.agent_id
    task.command.value = container.command
    for name, amount in (("cpus", container.cpus), ("mem", container.mem)):
        resource = task.resources.add(name=name, type=mesos_pb2.Value.SCALAR)
        resource.scalar.value = amount
    if container.host_ports:
        resource = task.resources.add(name="ports", type=mesos_pb2.Value.RANGES)
        for port in container.host_ports:
            resource.ranges.range.add(begin=port, end=port)
        variable = task.command.environment.variables.add(name="PORT")
        variable.value = str(container.host_ports[0])
    if container.image:
        task.container.type = mesos_pb2.ContainerInfo.MESOS
        task.container.mesos.image.type = mesos_pb2.Image.DOCKER
        task.container.mesos.image.docker.name = container.image
    if container.health_check is not None:
        check = container.health_check
        task.health_check.type = mesos_pb2.HealthCheck.COMMAND
        task.health_check.command.value = check.command
        task.health_check.interval_seconds = check.interval
        task.health_check.timeout_seconds = check.timeout
        task.health_check.delay_seconds = check.delay
        task.health_check.consecutive_failures = check.consecutive_failures
    task.labels.labels.add(key="pod", value=spec.name)
    return task


__all__ = ["EXECUTOR_ID", "Pod", "PodFramework", "PodRequest"]
