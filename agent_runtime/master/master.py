"""The master's core: frameworks, agents, offers and tasks, and the calls that change them.

HTTP and gRPC layers parse and validate the wire format, then call the methods here; this
module owns the bookkeeping and tells the allocator what changed. It runs on the daemon's single
event loop, so no locking is needed.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import time
import uuid
from collections.abc import Callable

from agent_runtime import __version__
from agent_runtime.errors import BadRequest, Forbidden
from agent_runtime.ids import check_id
from agent_runtime.master.allocator import Allocation, Allocator
from agent_runtime.master.config import MasterConfig
from agent_runtime.master.model import (
    TERMINAL_STATES,
    Agent,
    Framework,
    Offer,
)
from agent_runtime.master.quota import QuotaBook
from agent_runtime.master.registry import Registry
from agent_runtime.master.reservations import Reservations
from agent_runtime.master.tasks import TaskLauncher
from agent_runtime.proto import internal_pb2, mesos_pb2, scheduler_pb2
from agent_runtime.resources import Resources, validate_role
from agent_runtime.streams import EventStream
from agent_runtime.zookeeper import ZooKeeper, ZooKeeperError

log = logging.getLogger(__name__)

Capability = mesos_pb2.FrameworkInfo.Capability


class Master:
    def __init__(self, config: MasterConfig, clock: Callable[[], float] = time.time,
                 zookeeper: ZooKeeper | None = None) -> None:
        self.config = config
        self.clock = clock
        self.id = str(uuid.uuid4())
        self.start_time = clock()
        self.frameworks: dict[str, Framework] = {}
        self.completed_frameworks: collections.deque[Framework] = collections.deque(
            maxlen=config.max_completed_frameworks
        )
        self.agents: dict[str, Agent] = {}
        self.offers: dict[str, Offer] = {}
        self.allocator = Allocator(
            weights=config.weight_map(),
            allocation_interval=config.allocation_interval,
            filter_gpu_resources=config.filter_gpu_resources,
        )
        self.role_whitelist = (
            {r.strip() for r in config.roles.split(",") if r.strip()} if config.roles else None
        )
        self._next_framework = 0
        self._next_offer = 0
        self._next_agent = 0
        self._allocation_scheduled = False
        self._allocation_task: asyncio.Task[None] | None = None
        self.metrics: collections.Counter[str] = collections.Counter()
        self.launcher = TaskLauncher(self)
        self.registry = Registry(config.work_dir, zookeeper)
        # With --zk a master stands by until elected; `leader` is where the leader is then.
        self.leading = zookeeper is None
        self.leader: str | None = None
        # Agents the registry admitted that have not re-registered with this master yet (Mesos's
        # `slaves.recovered`): reconciliation does not answer for them until they come back or
        # --agent_reregister_timeout after the registry was recovered makes them unreachable.
        self.recovered_agents: dict[str, mesos_pb2.AgentInfo] = {}
        self._recovered_timer: asyncio.TimerHandle | None = None
        self.elected_time: float | None = None
        self.reservations = Reservations(self)
        self.quota = QuotaBook(self)
        hostname = config.hostname or socket.gethostname()
        self.info = mesos_pb2.MasterInfo(
            id=self.id,
            ip=_ip_as_uint32(config.ip),
            port=config.port,
            pid=f"master@{config.ip}:{config.port}",
            hostname=hostname,
            version=__version__,
        )
        self.info.address.hostname = hostname
        self.info.address.ip = config.ip
        self.info.address.port = config.port

    # Life cycle ----------------------------------------------------------------------------
    def elected(self) -> None:
        """With --zk: this master now leads; recover the registry and start allocating."""
        self.leading = True
        self.leader = None
        self.start()

    def start(self) -> None:
        self.registry.recover()
        self.quota.recover()
        self.elected_time = self.clock()
        loop = asyncio.get_running_loop()
        self.recovered_agents = {
            agent_id: info for agent_id, info in self.registry.state.agents.items()
            if agent_id not in self.agents and agent_id not in self.registry.state.unreachable
        }
        if self.recovered_agents:
            log.info("%d agents recovered from the registry; waiting %gs for them to re-register",
                     len(self.recovered_agents), self.config.agent_reregister_timeout)
            self._recovered_timer = loop.call_later(
                self.config.agent_reregister_timeout, self._recovered_agents_timeout)
        self._allocation_task = loop.create_task(self._allocation_loop())

    def _recovered_agents_timeout(self) -> None:
        """As Mesos's ``recoveredSlavesTimeout``: the recovered agents that did not re-register
        in time are marked unreachable in the registry."""
        self._recovered_timer = None
        late, self.recovered_agents = self.recovered_agents, {}
        if not late:
            return
        now = self.clock()
        for agent_id in late:
            log.warning("agent %s did not re-register within %gs; marking it unreachable",
                        agent_id, self.config.agent_reregister_timeout)
            self.registry.state.unreachable[agent_id] = now
        self._save_registry("mark recovered agents unreachable")
        self.metrics["master/slave_unreachable_completed"] += len(late)
        for agent_id in late:
            for framework in self.frameworks.values():
                failure = scheduler_pb2.Event(type=scheduler_pb2.Event.FAILURE)
                failure.failure.agent_id.value = agent_id
                framework.send(failure)

    def _save_registry(self, what: str) -> None:
        """Registry writes the master cannot refuse to make (timers): a failure is logged; with
        ZooKeeper it means another master leads, and the contender is about to stop this one."""
        try:
            self.registry.save()
        except ZooKeeperError as exc:
            log.error("cannot %s in the registry: %s", what, exc)

    def _admit_agent(self, declared: mesos_pb2.AgentInfo, agent_id: str) -> None:
        """Record an agent as admitted and reachable (Mesos's AdmitSlave / MarkSlaveReachable),
        with the AgentInfo it declared (dynamic reservations have their own registry entry).
        Written before the master acts on the registration, so a failed write refuses it."""
        state = self.registry.state
        self.recovered_agents.pop(agent_id, None)
        stored = mesos_pb2.AgentInfo()
        stored.CopyFrom(declared)
        stored.id.value = agent_id
        if state.agents.get(agent_id) == stored and agent_id not in state.unreachable:
            return
        state.agents[agent_id] = stored
        state.unreachable.pop(agent_id, None)
        self.registry.save()

    async def stop(self) -> None:
        if self._allocation_task is not None:
            self._allocation_task.cancel()
        if self._recovered_timer is not None:
            self._recovered_timer.cancel()
        for framework in self.frameworks.values():
            if framework.stream is not None:
                framework.stream.close()
            if framework.heartbeat is not None:
                framework.heartbeat.cancel()
        for agent in self.agents.values():
            agent.outbox.put_nowait(None)

    async def _allocation_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.allocation_interval)
            self.allocate()

    def schedule_allocation(self) -> None:
        """Allocate soon, once, however many events asked for it in this loop iteration."""
        if not self._allocation_scheduled:
            self._allocation_scheduled = True
            asyncio.get_running_loop().call_soon(self.allocate)

    def allocate(self) -> None:
        self._allocation_scheduled = False
        started = time.perf_counter()
        allocations = self.allocator.allocate(self.clock())
        self.metrics["allocator/mesos/allocation_runs"] += 1
        self.metrics["allocator/mesos/allocation_run_ms"] = int(
            (time.perf_counter() - started) * 1000
        )
        by_framework: dict[str, list[Offer]] = {}
        for allocation in allocations:
            offer = self._make_offer(allocation)
            if offer is not None:
                by_framework.setdefault(allocation.framework_id, []).append(offer)
        for framework_id, offers in by_framework.items():
            framework = self.frameworks[framework_id]
            event = scheduler_pb2.Event(type=scheduler_pb2.Event.OFFERS)
            event.offers.offers.extend(o.proto for o in offers)
            framework.send(event)

    def _make_offer(self, allocation: Allocation) -> Offer | None:
        framework = self.frameworks.get(allocation.framework_id)
        agent = self.agents.get(allocation.agent_id)
        if framework is None or agent is None or not framework.connected:
            self.allocator.recover(
                allocation.framework_id, allocation.role, allocation.agent_id,
                allocation.resources, now=self.clock(),
            )
            return None
        offer_id = f"{self.id}-O{self._next_offer}"
        self._next_offer += 1
        proto = mesos_pb2.Offer(hostname=agent.info.hostname)
        proto.id.value = offer_id
        proto.framework_id.value = framework.id
        proto.agent_id.value = agent.id
        proto.allocation_info.role = allocation.role
        proto.resources.extend(allocation.resources.to_proto(allocation.role))
        proto.attributes.extend(agent.info.attributes)
        proto.url.scheme = "http"
        proto.url.address.hostname = agent.info.hostname
        proto.url.address.ip = agent.pid.rpartition("@")[2].rpartition(":")[0]
        proto.url.address.port = agent.info.port
        proto.url.path = "/slave(1)"
        offer = Offer(proto, framework.id, agent.id, allocation.role, allocation.resources)
        if self.config.offer_timeout:
            offer.timer = asyncio.get_running_loop().call_later(
                self.config.offer_timeout, self.rescind_offer, offer_id
            )
        self.offers[offer_id] = offer
        framework.offers[offer_id] = offer
        return offer

    def remove_offer(self, offer_id: str) -> Offer | None:
        offer = self.offers.pop(offer_id, None)
        if offer is None:
            return None
        if offer.timer is not None:
            offer.timer.cancel()
        framework = self.frameworks.get(offer.framework_id)
        if framework is not None:
            framework.offers.pop(offer_id, None)
        return offer

    def rescind_offer(self, offer_id: str, *, refuse_seconds: float | None = None) -> None:
        offer = self.remove_offer(offer_id)
        if offer is None:
            return
        self.allocator.recover(
            offer.framework_id, offer.role, offer.agent_id, offer.resources,
            now=self.clock(), refuse_seconds=refuse_seconds,
        )
        framework = self.frameworks.get(offer.framework_id)
        if framework is not None:
            event = scheduler_pb2.Event(type=scheduler_pb2.Event.RESCIND)
            event.rescind.offer_id.value = offer_id
            framework.send(event)
        self.schedule_allocation()

    # Frameworks ----------------------------------------------------------------------------
    def validate_framework_info(self, info: mesos_pb2.FrameworkInfo) -> None:
        if not info.user:
            raise BadRequest("FrameworkInfo.user must be set")
        if not info.name:
            raise BadRequest("FrameworkInfo.name must be set")
        if info.failover_timeout < 0:
            raise BadRequest("FrameworkInfo.failover_timeout must not be negative")
        if info.id.value:  # an empty one asks for a new ID, as with Mesos's driver
            # Agents name sandboxes and checkpoints after it: '../..' or '/etc' must not pass.
            check_id(info.id.value, "'FrameworkInfo.id'")
        multi_role = any(c.type == Capability.MULTI_ROLE for c in info.capabilities)
        if info.roles and not multi_role:
            raise BadRequest("'FrameworkInfo.roles' is set but MULTI_ROLE capability is not")
        if multi_role and info.HasField("role"):
            raise BadRequest("'FrameworkInfo.role' must not be set with MULTI_ROLE")
        roles = list(info.roles) if multi_role else [info.role or "*"]
        if len(set(roles)) != len(roles):
            raise BadRequest(f"'FrameworkInfo.roles' contains duplicate items: {roles}")
        for role in roles:
            validate_role(role)
            if self.role_whitelist is not None and role != "*" and role not in self.role_whitelist:
                raise BadRequest(f"Role '{role}' is not present in the master's --roles")

    def subscribe(self, call: scheduler_pb2.Call, stream: EventStream) -> Framework:
        info = mesos_pb2.FrameworkInfo()
        info.CopyFrom(call.subscribe.framework_info)
        self.validate_framework_info(info)
        if (call.HasField("framework_id") and info.HasField("id")
                and call.framework_id.value != info.id.value):
            raise BadRequest("'framework_id' differs from 'subscribe.framework_info.id'")
        now = self.clock()
        framework_id = info.id.value if info.HasField("id") else ""
        framework = self.frameworks.get(framework_id) if framework_id else None
        if framework is None:
            if not framework_id:
                framework_id = f"{self.id}-{self._next_framework:04d}"
                self._next_framework += 1
                info.id.value = framework_id
            elif any(f.id == framework_id for f in self.completed_frameworks):
                raise Forbidden(f"Framework {framework_id} has been removed")
            framework = Framework(framework_id, info, registered_time=now)
            self.frameworks[framework_id] = framework
            self.allocator.add_framework(
                framework_id, framework.roles,
                suppressed=list(call.subscribe.suppressed_roles),
                gpu_aware=framework.has_capability(Capability.GPU_RESOURCES),
            )
            log.info("framework %s (%s) subscribed", framework_id, info.name)
        else:
            # A failover: the new connection replaces the old one, keeping user and checkpoint.
            info.user = framework.info.user
            info.checkpoint = framework.info.checkpoint
            if framework.stream is not None:
                error = scheduler_pb2.Event(type=scheduler_pb2.Event.ERROR)
                error.error.message = "Framework failed over"
                framework.stream.send(error)
                framework.stream.close()
            if framework.heartbeat is not None:
                framework.heartbeat.cancel()
            if framework.failover_timer is not None:
                framework.failover_timer.cancel()
                framework.failover_timer = None
            for offer_id in list(framework.offers):
                self.rescind_offer(offer_id)
            framework.info = info
            framework.reregistered_time = now
            framework.recovered = False
            self.allocator.update_framework(
                framework_id, framework.roles,
                gpu_aware=framework.has_capability(Capability.GPU_RESOURCES),
            )
            log.info("framework %s (%s) re-subscribed", framework_id, info.name)
        framework.suppressed_roles = set(call.subscribe.suppressed_roles)
        framework.stream = stream
        framework.connected = True
        framework.active = True
        self.allocator.activate_framework(framework_id)
        self.allocator.revive(framework_id)
        if framework.suppressed_roles:
            self.allocator.suppress(framework_id, list(framework.suppressed_roles))

        subscribed = scheduler_pb2.Event(type=scheduler_pb2.Event.SUBSCRIBED)
        subscribed.subscribed.framework_id.value = framework_id
        subscribed.subscribed.heartbeat_interval_seconds = self.config.heartbeat_interval
        subscribed.subscribed.master_info.CopyFrom(self.info)
        stream.send(subscribed)
        stream.send(scheduler_pb2.Event(type=scheduler_pb2.Event.HEARTBEAT))
        framework.heartbeat = asyncio.get_running_loop().create_task(self._heartbeats(framework))
        self.schedule_allocation()
        return framework

    async def _heartbeats(self, framework: Framework) -> None:
        heartbeat = scheduler_pb2.Event(type=scheduler_pb2.Event.HEARTBEAT)
        while True:
            await asyncio.sleep(self.config.heartbeat_interval)
            framework.send(heartbeat)

    def stream_closed(self, framework: Framework, stream: EventStream) -> None:
        """The scheduler's connection went away: disconnect, start the failover clock."""
        if framework.stream is not stream or self.frameworks.get(framework.id) is not framework:
            return
        log.info("framework %s disconnected", framework.id)
        framework.stream = None
        framework.connected = False
        framework.active = False
        framework.unregistered_time = self.clock()
        if framework.heartbeat is not None:
            framework.heartbeat.cancel()
        self.allocator.deactivate_framework(framework.id)
        for offer_id in list(framework.offers):
            self.rescind_offer(offer_id)
        timeout = framework.info.failover_timeout
        framework.failover_timer = asyncio.get_running_loop().call_later(
            timeout, self._failover_expired, framework.id
        )

    def _failover_expired(self, framework_id: str) -> None:
        framework = self.frameworks.get(framework_id)
        if framework is not None and not framework.connected:
            log.info("framework %s did not fail over in time; removing it", framework_id)
            self.remove_framework(framework)

    def remove_framework(self, framework: Framework) -> None:
        """TEARDOWN: kill every task of the framework everywhere and forget it."""
        if self.frameworks.pop(framework.id, None) is None:
            return
        if framework.failover_timer is not None:
            framework.failover_timer.cancel()
        if framework.heartbeat is not None:
            framework.heartbeat.cancel()
        for offer_id in list(framework.offers):
            offer = self.remove_offer(offer_id)
            if offer is not None:
                self.allocator.recover(
                    offer.framework_id, offer.role, offer.agent_id, offer.resources,
                    now=self.clock(),
                )
        message = internal_pb2.MasterMessage()
        message.shutdown_framework.framework_id.value = framework.id
        for agent in self.agents.values():
            if framework.id in agent.tasks or framework.id in self.launcher.executors_on(agent):
                agent.send(message)
        # Completed first, so the tasks forgotten below land in its completed_tasks.
        self.completed_frameworks.append(framework)
        for task in list(framework.tasks.values()):
            if task.state not in TERMINAL_STATES:
                self.launcher.free_task(task)
                task.state = mesos_pb2.TASK_KILLED
            self.launcher.forget_task(task)
        self.launcher.forget_framework_executors(framework.id)
        self.allocator.remove_framework(framework.id)
        framework.active = False
        framework.connected = False
        framework.unregistered_time = self.clock()
        if framework.stream is not None:
            framework.stream.close()
            framework.stream = None
        self.schedule_allocation()

    # Agents --------------------------------------------------------------------------------
    def register_agent(
        self,
        register: internal_pb2.RegisterAgent,
        outbox: asyncio.Queue[internal_pb2.MasterMessage | None],
    ) -> Agent:
        info = mesos_pb2.AgentInfo()
        info.CopyFrom(register.agent_info)
        total = Resources.from_proto(info.resources)
        now = self.clock()
        agent_id = info.id.value if info.HasField("id") else ""
        existing = self.agents.get(agent_id) if agent_id else None
        if agent_id:
            total = self.reservations.apply_registered(agent_id, total)
            info.ClearField("resources")
            info.resources.extend(total.to_proto())
        if not agent_id:
            agent_id = f"{self.id}-S{self._next_agent}"
            self._next_agent += 1
            info.id.value = agent_id
        self._admit_agent(register.agent_info, agent_id)
        if existing is not None:
            if existing.total != total:
                existing.total = total
                self.allocator.update_agent(agent_id, total)
            if existing.removal_timer is not None:
                existing.removal_timer.cancel()
            existing.outbox.put_nowait(None)
            existing.outbox = outbox
            existing.connected = True
            existing.active = True
            existing.reregistered_time = now
            existing.info = info
            self.allocator.activate_agent(agent_id)
            if existing.unreachable_time is not None:
                existing.unreachable_time = None
                self.launcher.agent_reachable(existing, register.executors)
            else:
                self.launcher.agent_reregistered(existing, register.executors)
            log.info("agent %s re-registered", agent_id)
            self.schedule_allocation()
            return existing
        agent = Agent(
            agent_id, info, register.pid, total, registered_time=now, outbox=outbox,
            version=register.version, capabilities=[c.type for c in register.capabilities],
        )
        if register.agent_info.HasField("id"):
            agent.reregistered_time = now
        self.agents[agent_id] = agent
        self.allocator.add_agent(agent_id, total)
        for executor in register.executors:
            self.launcher.recover_executor(agent, executor)
        log.info("agent %s registered at %s with %s", agent_id, register.pid, total.text())
        self.schedule_allocation()
        return agent

    def agent_disconnected(self, agent: Agent, outbox: object) -> None:
        if agent.outbox is not outbox or self.agents.get(agent.id) is not agent:
            return
        log.info("agent %s disconnected", agent.id)
        agent.connected = False
        agent.active = False
        # Before rescinding: the resources the rescinds return must not be offered again.
        self.allocator.deactivate_agent(agent.id)
        for offer in [o for o in self.offers.values() if o.agent_id == agent.id]:
            self.rescind_offer(offer.proto.id.value)
        # As Mesos's health checks: a link that stays down as long as the missed pings would
        # take makes the agent unreachable (its tasks may still run; it may come back).
        grace = self.config.agent_ping_timeout * self.config.max_agent_ping_timeouts
        agent.removal_timer = asyncio.get_running_loop().call_later(
            grace, self.mark_unreachable, agent.id, "its link stayed down"
        )

    def mark_unreachable(self, agent_id: str, why: str) -> None:
        agent = self.agents.get(agent_id)
        if agent is None or agent.unreachable_time is not None:
            return
        log.warning("agent %s is unreachable: %s", agent_id, why)
        if agent.removal_timer is not None:
            agent.removal_timer.cancel()
            agent.removal_timer = None
        agent.unreachable_time = self.clock()
        self.registry.state.unreachable[agent_id] = agent.unreachable_time
        self._save_registry(f"mark agent {agent_id} unreachable")
        agent.active = False
        self.allocator.deactivate_agent(agent_id)
        for offer in [o for o in self.offers.values() if o.agent_id == agent_id]:
            self.rescind_offer(offer.proto.id.value)
        if agent.connected:
            agent.connected = False
            agent.outbox.put_nowait(None)  # end the link; the agent re-registers when it can
        self.launcher.agent_unreachable(agent, why)
        self.metrics["master/slave_unreachable_completed"] += 1
        for framework in self.frameworks.values():
            failure = scheduler_pb2.Event(type=scheduler_pb2.Event.FAILURE)
            failure.failure.agent_id.value = agent_id
            framework.send(failure)

    def remove_agent(self, agent_id: str) -> None:
        agent = self.agents.pop(agent_id, None)
        if agent is None:
            return
        log.warning("removing agent %s: it did not come back", agent_id)
        self.registry.state.agents.pop(agent_id, None)
        self.registry.state.unreachable.pop(agent_id, None)
        self._save_registry(f"remove agent {agent_id}")
        for offer in [o for o in self.offers.values() if o.agent_id == agent_id]:
            self.rescind_offer(offer.proto.id.value)
        self.launcher.agent_removed(agent)
        self.allocator.remove_agent(agent_id)
        for framework in self.frameworks.values():
            failure = scheduler_pb2.Event(type=scheduler_pb2.Event.FAILURE)
            failure.failure.agent_id.value = agent_id
            framework.send(failure)

    def framework_for(self, call: scheduler_pb2.Call, stream_id: str | None) -> Framework:
        framework = self.frameworks.get(call.framework_id.value)
        if framework is None:
            raise BadRequest("Framework cannot be found")
        if not framework.connected or framework.stream is None:
            raise Forbidden("Framework is not subscribed")
        if stream_id != framework.stream.stream_id:
            raise BadRequest(
                f"The stream ID '{stream_id}' included in this request didn't match "
                f"the stream ID currently associated with framework ID {framework.id}"
            )
        return framework


def _ip_as_uint32(ip: str) -> int:
    try:
        packed = socket.inet_aton(ip)
    except OSError:
        return 0
    return int.from_bytes(packed, "little")
