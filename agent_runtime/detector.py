"""Finding the leading master: a fixed ``host:port``, or whoever leads in ZooKeeper (``zk://``).

Agents and schedulers ask again each time they (re)connect, so a new leader is found as soon as
the old one's connection breaks; nothing needs to watch ZooKeeper in between.
"""

from __future__ import annotations

import asyncio
import json
import logging

from agent_runtime.errors import RuntimeErrorBase
from agent_runtime.zookeeper import ZooKeeper, ZooKeeperError, parse_url

log = logging.getLogger(__name__)


class NoLeader(RuntimeErrorBase):
    """ZooKeeper names no leading master right now."""

    status = 503


def address_of(info_json: bytes) -> str:
    """``ip:port`` (or ``hostname:port``) from a MasterInfo JSON as Mesos masters write it."""
    try:
        info = json.loads(info_json)
        address = info.get("address") or {}
        host = address.get("ip") or address.get("hostname") or info.get("hostname")
        port = address.get("port") or info.get("port")
    except (ValueError, AttributeError) as exc:
        raise ZooKeeperError(f"the leader's MasterInfo is not JSON: {exc}") from exc
    if not host or not port:
        raise ZooKeeperError("the leader's MasterInfo has no address")
    return f"{host}:{port}"


class MasterDetector:
    def __init__(self, master: str, session_timeout: float = 10.0) -> None:
        self.master = master.removeprefix("http://").removeprefix("https://").rstrip("/")
        self._zookeeper: ZooKeeper | None = None
        if self.master.startswith("zk://"):
            self._zookeeper = ZooKeeper(parse_url(self.master), session_timeout)
            self._started = False

    @property
    def uses_zookeeper(self) -> bool:
        return self._zookeeper is not None

    async def leader(self) -> str:
        """``host:port`` of the leading master's HTTP server."""
        zookeeper = self._zookeeper
        if zookeeper is None:
            return self.master
        if not self._started:
            await asyncio.to_thread(zookeeper.start)
            self._started = True
        info = await asyncio.to_thread(zookeeper.leader)
        if info is None:
            raise NoLeader(f"no master leads in {self.master}")
        return address_of(info)

    def close(self) -> None:
        if self._zookeeper is not None and self._started:
            self._zookeeper.stop()
