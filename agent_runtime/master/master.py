"""The master: one book, one set of effects, and the helpers that change the book.

Nothing below holds the Master. :class:`~agent_runtime.master.book.MasterBook` is the data
(frameworks, agents, offers by agent, tasks, custom executors, the registry's state);
:class:`~agent_runtime.master.effects.LiveEffects` is everything that leaves it (agents,
frameworks, the registry, the allocation timer, metrics); each helper takes those two, the pure
allocator where it needs it, and the sibling helpers it calls::

    Offers ............. allocation runs -> offers; take, give back, rescind
    Reservations ....... dynamic reservations (operator API and offer operations)
    QuotaBook .......... quota and weights
    CustomExecutors .... custom executors on agents
    Reconciler ......... RECONCILE answers
    TaskEnds ........... freeing and ending tasks, the master's own status updates
    TaskLauncher ....... ACCEPT/DECLINE, updates, acknowledgements, kills, messages
    AgentTasks ......... what agent lifecycle events do to tasks
    FrameworkLifecycle . SUBSCRIBE, failover, disconnection, TEARDOWN
    AgentLifecycle ..... registration, lost links, unreachable, removed

HTTP and gRPC layers parse and validate the wire format, then call the helpers. Everything runs
on the daemon's single event loop, so no locking is needed.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from collections.abc import Callable

from agent_runtime import __version__
from agent_runtime.master.agent_gone import AgentGone
from agent_runtime.master.agent_tasks import AgentTasks
from agent_runtime.master.agents import AgentLifecycle
from agent_runtime.master.allocator import Allocator
from agent_runtime.master.book import MasterBook
from agent_runtime.master.config import MasterConfig
from agent_runtime.master.effects import LiveEffects
from agent_runtime.master.executors import CustomExecutors
from agent_runtime.master.frameworks import FrameworkLifecycle
from agent_runtime.master.maintenance import Maintenance
from agent_runtime.master.offers import Offers
from agent_runtime.master.quota import QuotaBook
from agent_runtime.master.reconciliation import Reconciler
from agent_runtime.master.registry import Registry
from agent_runtime.master.reservations import Reservations
from agent_runtime.master.task_ends import TaskEnds
from agent_runtime.master.tasks import TaskLauncher
from agent_runtime.proto import mesos_pb2
from agent_runtime.zookeeper import ZooKeeper

log = logging.getLogger(__name__)


class Master:
    def __init__(self, config: MasterConfig, clock: Callable[[], float] = time.time,
                 zookeeper: ZooKeeper | None = None) -> None:
        self.config = config
        self.id = str(uuid.uuid4())
        self.start_time = clock()
        self.info = _master_info(self.id, config)
        self.book = MasterBook(max_completed_frameworks=config.max_completed_frameworks,
                               roles=config.role_whitelist())
        self.registry = Registry(config.work_dir, zookeeper)
        self.book.registry = self.registry.state
        self.allocator = Allocator(
            weights=config.weight_map(),
            allocation_interval=config.allocation_interval,
            filter_gpu_resources=config.filter_gpu_resources,
        )
        self.effects = LiveEffects(self.book, self.registry, self._allocate, clock)
        # With --zk a master stands by until elected; `leader` is where the leader is then.
        self.leading = zookeeper is None
        self.leader: str | None = None
        self.elected_time: float | None = None
        self._allocation_task: asyncio.Task[None] | None = None

        book, effects, allocator = self.book, self.effects, self.allocator
        self.offers = Offers(book, effects, allocator, master_id=self.id,
                             offer_timeout=config.offer_timeout)
        self.reservations = Reservations(book, effects, allocator, self.offers)
        self.maintenance = Maintenance(book, effects, allocator, self.offers, master_id=self.id)
        self.quota = QuotaBook(book, effects, allocator, flag_weights=config.weight_map())
        executors = CustomExecutors(book, effects, allocator)
        ends = TaskEnds(book, effects, allocator)
        self.reconciler = Reconciler(book, effects)
        self.launcher = TaskLauncher(book, effects, allocator, offers=self.offers,
                                  reservations=self.reservations, executors=executors,
                                  reconciler=self.reconciler, ends=ends)
        agent_tasks = AgentTasks(book, effects, allocator, executors=executors, ends=ends)
        self.framework_lifecycle = FrameworkLifecycle(
            book, effects, allocator, offers=self.offers, executors=executors, ends=ends,
            master_info=self.info, heartbeat_interval=config.heartbeat_interval)
        self.agent_lifecycle = AgentLifecycle(
            book, effects, allocator, offers=self.offers, reservations=self.reservations,
            agent_tasks=agent_tasks, master_id=self.id,
            link_grace=config.agent_ping_timeout * config.max_agent_ping_timeouts,
            reregister_timeout=config.agent_reregister_timeout)
        self.agent_lifecycle.offerable = self.maintenance.offered
        self.agent_gone = AgentGone(book, effects, maintenance=self.maintenance,
                                    lifecycle=self.agent_lifecycle, ends=ends)
        self.effects.watchers.append(self.agent_gone.watch)

    def _allocate(self) -> None:
        self.offers.allocate()
        self.maintenance.send_inverse_offers()

    # Life cycle ----------------------------------------------------------------------------
    def elected(self) -> None:
        """With --zk: this master now leads; recover the registry and start allocating."""
        self.leading = True
        self.leader = None
        self.start()

    def start(self) -> None:
        self.book.registry = self.registry.recover()
        self.quota.recover()
        self.elected_time = self.effects.now()
        self.agent_lifecycle.await_recovered()
        self._allocation_task = asyncio.get_running_loop().create_task(self._allocation_loop())

    async def stop(self) -> None:
        if self._allocation_task is not None:
            self._allocation_task.cancel()
        for framework in self.book.frameworks.values():
            if framework.stream is not None:
                framework.stream.close()
            if framework.heartbeat is not None:
                framework.heartbeat.cancel()
        self.agent_lifecycle.stop()

    async def _allocation_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.allocation_interval)
            self._allocate()


def _master_info(master_id: str, config: MasterConfig) -> mesos_pb2.MasterInfo:
    hostname = config.hostname or socket.gethostname()
    info = mesos_pb2.MasterInfo(id=master_id, hostname=hostname, version=__version__)
    info.address.hostname = hostname
    advertise(info, config, config.port)
    return info


def advertise(info: mesos_pb2.MasterInfo, config: MasterConfig, bound_port: int) -> None:
    """Where others reach the master: --advertise_ip/--advertise_port when given (a master
    behind NAT or in a container with published ports), else what it is bound to."""
    ip = config.advertise_ip or config.ip
    port = config.advertise_port or bound_port
    info.ip = _ip_as_uint32(ip)
    info.port = port
    info.pid = f"master@{ip}:{port}"
    info.address.ip = ip
    info.address.port = port


def _ip_as_uint32(ip: str) -> int:
    try:
        packed = socket.inet_aton(ip)
    except OSError:
        return 0
    return int.from_bytes(packed, "little")
