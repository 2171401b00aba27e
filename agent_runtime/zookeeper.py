"""The ZooKeeper seam (kazoo): URLs, leader election and detection, and fenced writes.

Laid out as Mesos lays it out, so tools that find the Mesos leader through ZooKeeper find ours:
each master contends by creating an ephemeral, sequential znode ``<path>/json.info_<n>`` holding
its MasterInfo as JSON; the lowest sequence number leads; agents and schedulers read that znode
to learn where the leader is. The master's registry is the znode ``<path>/registry``, written
with the version it last read, so a master that lost the lead cannot overwrite its successor.

kazoo runs its own threads; watches and state changes are handed to the caller's callbacks on
those threads, and the callers move them onto their event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import BadVersionError, KazooException, NodeExistsError, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError

from agent_runtime.errors import FlagError, RuntimeErrorBase

log = logging.getLogger(__name__)

PREFIX = "json.info_"
REGISTRY = "registry"


class ZooKeeperError(RuntimeErrorBase):
    """ZooKeeper could not be reached, or refused what we asked."""


class Fenced(ZooKeeperError):
    """A registry write lost to a newer one: another master leads now."""


@dataclass(frozen=True)
class ZkUrl:
    hosts: str
    path: str
    auth: tuple[str, str] | None = None


def parse_url(url: str) -> ZkUrl:
    """``zk://[user:password@]host1:port1,host2:port2/path``, as Mesos's ``--zk``."""
    if not url.startswith("zk://"):
        raise FlagError(f"Expecting a zk:// URL, got '{url}'")
    rest = url[len("zk://"):]
    auth = None
    if "@" in rest.split("/", 1)[0]:
        credentials, rest = rest.split("@", 1)
        user, _, password = credentials.partition(":")
        auth = (user, password)
    hosts, slash, path = rest.partition("/")
    if not hosts or not slash or not path.strip("/"):
        raise FlagError(f"Expecting zk://host:port[,host:port...]/path, got '{url}'")
    for host in hosts.split(","):
        name, colon, port = host.rpartition(":")
        if not colon or not name or not port.isdigit():
            raise FlagError(f"Invalid ZooKeeper server '{host}' in '{url}'")
    return ZkUrl(hosts, "/" + path.strip("/"), auth)


class ZooKeeper:
    def __init__(self, url: ZkUrl, session_timeout: float = 10.0) -> None:
        self.url = url
        auth_data = [("digest", f"{url.auth[0]}:{url.auth[1]}")] if url.auth else None
        self._client = KazooClient(hosts=url.hosts, timeout=session_timeout,
                                   auth_data=auth_data)

    def start(self, timeout: float = 15.0) -> None:
        try:
            self._client.start(timeout=timeout)
            self._client.ensure_path(self.url.path)
        except (KazooTimeoutError, KazooException) as exc:
            raise ZooKeeperError(
                f"cannot reach ZooKeeper at {self.url.hosts}: {exc or type(exc).__name__}"
            ) from exc

    def stop(self) -> None:
        try:
            self._client.stop()
            self._client.close()
        except KazooException:
            pass

    def on_state(self, callback: Callable[[str], None]) -> None:
        """``callback("LOST" | "SUSPENDED" | "CONNECTED")`` on kazoo's thread."""

        def listener(state: str) -> None:
            callback(str(state))

        self._client.add_listener(listener)

    # Election -------------------------------------------------------------------------------
    def contend(self, info_json: bytes) -> str:
        """Enter the election; returns our znode's name (``json.info_0000000003``)."""
        try:
            path = self._client.create(f"{self.url.path}/{PREFIX}", info_json,
                                       ephemeral=True, sequence=True)
        except KazooException as exc:
            raise ZooKeeperError(f"cannot contend for leadership: {exc}") from exc
        return str(path).rsplit("/", 1)[1]

    def contenders(self, watch: Callable[[list[str]], None] | None = None) -> list[str]:
        """Contender znodes, lowest (the leader) first; ``watch`` fires once on the next change."""

        def fired(_event: object) -> None:
            if watch is not None:
                try:
                    watch(self.contenders(watch))
                except ZooKeeperError as exc:
                    log.warning("lost the contender watch: %s", exc)

        try:
            children = self._client.get_children(self.url.path,
                                                 watch=fired if watch else None)
        except KazooException as exc:
            raise ZooKeeperError(f"cannot list {self.url.path}: {exc}") from exc
        return sorted(c for c in children if c.startswith(PREFIX))

    def leader(self) -> bytes | None:
        """The leading master's MasterInfo JSON, or None when there is no leader."""
        for name in self.contenders():
            try:
                data, _ = self._client.get(f"{self.url.path}/{name}")
            except NoNodeError:
                continue  # it went away between the listing and the read
            except KazooException as exc:
                raise ZooKeeperError(f"cannot read {name}: {exc}") from exc
            return bytes(data)
        return None

    # Registry -------------------------------------------------------------------------------
    def read_registry(self) -> tuple[bytes | None, int]:
        """The registry document and its version (``-1`` when there is none yet)."""
        try:
            data, stat = self._client.get(f"{self.url.path}/{REGISTRY}")
        except NoNodeError:
            return None, -1
        except KazooException as exc:
            raise ZooKeeperError(f"cannot read the registry: {exc}") from exc
        return bytes(data), int(stat.version)

    def write_registry(self, data: bytes, version: int) -> int:
        """Write if nobody wrote since ``version``; returns the new version."""
        path = f"{self.url.path}/{REGISTRY}"
        try:
            if version < 0:
                self._client.create(path, data)
                return 0
            return int(self._client.set(path, data, version=version).version)
        except (BadVersionError, NodeExistsError) as exc:
            raise Fenced("the registry was written by another master") from exc
        except KazooException as exc:
            raise ZooKeeperError(f"cannot write the registry: {exc}") from exc


__all__ = ["Fenced", "KazooState", "ZkUrl", "ZooKeeper", "ZooKeeperError", "parse_url"]
