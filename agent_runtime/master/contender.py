"""Master election through ZooKeeper (``--zk``).

Each master enters the election with its MasterInfo (see :mod:`agent_runtime.zookeeper`) and
serves as a standby until its znode is the lowest: then it recovers the registry and leads.
A leader that loses leadership (its znode gone, or its ZooKeeper session expired) stops acting
at once: like Mesos, the process exits and is restarted by its supervisor as a new contender.

Watches fire on kazoo's threads; everything is handed to the event loop.

    STANDBY --lowest znode--> LEADING --znode gone / session LOST--> (exit)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from agent_runtime.codec import jsonpb
from agent_runtime.detector import address_of
from agent_runtime.proto import mesos_pb2
from agent_runtime.zookeeper import ZooKeeper, ZooKeeperError

log = logging.getLogger(__name__)


class Contender:
    def __init__(
        self,
        zookeeper: ZooKeeper,
        info: mesos_pb2.MasterInfo,
        *,
        on_elected: Callable[[], None],
        on_leader: Callable[[str | None], None],
        on_lost: Callable[[str], None],
    ) -> None:
        self.zookeeper = zookeeper
        self.info = info
        self._on_elected = on_elected
        self._on_leader = on_leader
        self._on_lost = on_lost
        self.znode: str | None = None
        self.leading = False
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.zookeeper.on_state(self._state_changed)
        self.znode = await asyncio.to_thread(self.zookeeper.contend, jsonpb.dumps(self.info))
        log.info("contending for leadership as %s", self.znode)
        contenders = await asyncio.to_thread(self.zookeeper.contenders, self._watched)
        self._changed(contenders)

    # kazoo threads -----------------------------------------------------------------------------
    def _watched(self, contenders: list[str]) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._changed, contenders)

    def _state_changed(self, state: str) -> None:
        if state == "LOST" and self._loop is not None:
            self._loop.call_soon_threadsafe(self._lost, "the ZooKeeper session expired")

    # Event loop ---------------------------------------------------------------------------------
    def _changed(self, contenders: list[str]) -> None:
        if self.znode not in contenders:
            self._lost(f"our znode {self.znode} is gone")
            return
        if contenders[0] == self.znode:
            if not self.leading:
                self.leading = True
                log.warning("elected leading master (%s)", self.znode)
                self._on_leader(None)
                self._on_elected()
            return
        asyncio.get_running_loop().create_task(self._follow(contenders[0]))

    async def _follow(self, leader: str) -> None:
        try:
            info = await asyncio.to_thread(self.zookeeper.leader)
        except ZooKeeperError as exc:
            log.warning("cannot read the leader %s: %s", leader, exc)
            return
        address = address_of(info) if info is not None else None
        log.info("standing by; the leading master is %s", address)
        self._on_leader(address)

    def _lost(self, why: str) -> None:
        if self.leading:
            log.error("lost leadership: %s; stepping down", why)
        else:
            log.error("left the election: %s", why)
        self.leading = False
        self._on_lost(why)
