"""Network namespaces as hosts, an address each, and the wire between them.

::

    this machine's namespace                       one namespace per host (<prefix>-<name>)
      <prefix>br 10.251.N.1/24 (the gateway)  ----  eth0 10.251.N.2/24   e.g. zk
         |  bridge wire: a veth pair per host ----  eth0 10.251.N.3/24   master1
         |  switch wire: a TAP device per host ---  eth0 10.251.N.4/24   agent1 ...

The hosts have loopback and their /24, and no default route: nothing they send can leave the
machine. The gateway address lets the machine itself (a test, a scheduler, ``curl``) reach every
host, as a laptop reaches a Vagrant host-only network. Two wires, chosen once per network:

- ``bridge``: the kernel's bridge and veth pairs. A partition takes the host's bridge port down.
  With bridge netfilter on, bridged frames go through iptables' FORWARD chain, whose policy
  dockerd sets to DROP, so an ACCEPT rule for our bridge lives exactly as long as the bridge.
- ``switch``: ``switch.py``, a userspace switch over TAP devices that also drops and delays
  frames per port (netem's job, which some kernels, this project's CI included, lack).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ipaddress
import logging
import os
import random
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Protocol

from agent_runtime.errors import RuntimeErrorBase

log = logging.getLogger(__name__)

# Where the hosts' addresses come from: a free /24 of it per network.
POOL = ipaddress.IPv4Network("10.251.0.0/16")
NETNS_DIR = "/run/netns"


class NetworkError(RuntimeErrorBase):
    """The namespaces or the wire could not be set up."""


@dataclass(frozen=True)
class Host:
    name: str  # agent1, master2, zk
    netns: str  # its namespace, under /run/netns
    ip: str  # eth0's address there

    def argv(self, argv: list[str]) -> list[str]:
        """``argv`` run inside this host's network namespace."""
        return ["nsenter", f"--net={NETNS_DIR}/{self.netns}", "--", *argv]


class Wire(Protocol):
    def attach(self, index: int, netns: str) -> str:
        """Give host ``index`` a port; returns the name of its interface, moved into ``netns``."""

    def cut(self, index: int) -> None:
        """Nothing reaches host ``index`` and nothing it sends arrives anywhere."""

    def heal(self, index: int) -> None: ...

    def impair(self, index: int, loss: float, delay: float) -> None:
        """Lose ``loss`` (0..1) of the frames to and from host ``index`` and delay the rest by
        ``delay`` seconds."""

    def close(self) -> None: ...


def _ipr(netns: str | None = None):  # type: ignore[no-untyped-def]
    # Imported here: pyroute2 costs ~150 ms that importing this package need not pay.
    from pyroute2 import IPRoute  # type: ignore[import-untyped]

    return IPRoute(netns=netns) if netns else IPRoute()


def free_subnet() -> ipaddress.IPv4Network:
    """A /24 of :data:`POOL` that no address on this machine falls in."""
    with _ipr() as ipr:
        used = [ipaddress.IPv4Interface(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}").network
                for a in ipr.get_addr(family=2)]
    candidates = list(POOL.subnets(new_prefix=24))[1:-1]
    random.shuffle(candidates)
    for subnet in candidates:
        if not any(subnet.overlaps(other) for other in used):
            return subnet
    raise NetworkError(f"no free /24 left in {POOL}")


class BridgeWire:
    def __init__(self, prefix: str, gateway: ipaddress.IPv4Interface) -> None:
        self.bridge = f"{prefix}br"
        self.prefix = prefix
        self._rule = ["FORWARD", "-i", self.bridge, "-o", self.bridge, "-j", "ACCEPT"]
        with _ipr() as ipr:
            ipr.link("add", ifname=self.bridge, kind="bridge")
            index = ipr.link_lookup(ifname=self.bridge)[0]
            ipr.addr("add", index=index, address=str(gateway.ip),
                     prefixlen=gateway.network.prefixlen)
            ipr.link("set", index=index, state="up")
        self._iptables = shutil.which("iptables")
        if self._iptables:
            subprocess.run([self._iptables, "-I", *self._rule[:1], "1", *self._rule[1:]],
                           check=True, capture_output=True)

    def _port(self, index: int) -> str:
        return f"{self.prefix}v{index}"

    def attach(self, index: int, netns: str) -> str:
        peer = f"{self.prefix}p{index}"
        with _ipr() as ipr:
            ipr.link("add", ifname=self._port(index), kind="veth", peer=peer)
            port = ipr.link_lookup(ifname=self._port(index))[0]
            bridge = ipr.link_lookup(ifname=self.bridge)[0]
            ipr.link("set", index=port, master=bridge, state="up")
            ipr.link("set", index=ipr.link_lookup(ifname=peer)[0], net_ns_fd=netns)
        return peer

    def _state(self, index: int, state: str) -> None:
        def flip() -> None:
            with _ipr() as ipr:
                ipr.link("set", index=ipr.link_lookup(ifname=self._port(index))[0], state=state)

        # pyroute2's sync socket runs an event loop of its own: never on the caller's, which
        # may be running (an async test cuts a link mid-way).
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(flip).result()

    def cut(self, index: int) -> None:
        self._state(index, "down")

    def heal(self, index: int) -> None:
        self._state(index, "up")

    def impair(self, index: int, loss: float, delay: float) -> None:
        raise NetworkError("the bridge wire neither loses nor delays: use the switch wire")

    def close(self) -> None:
        with _ipr() as ipr:
            for index in ipr.link_lookup(ifname=self.bridge):
                ipr.link("del", index=index)
        if self._iptables:
            subprocess.run([self._iptables, "-D", *self._rule], check=False, capture_output=True)


class SwitchWire:
    """``switch.py`` in a process of its own; port 0 is the gateway's, port i+1 host i's."""

    def __init__(self, prefix: str, gateway: ipaddress.IPv4Interface, hosts: int) -> None:
        self.taps = [f"{prefix}t{port}" for port in range(hosts + 1)]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agent_runtime.netns.switch", *self.taps],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            self.process.kill()
            raise NetworkError("the switch did not start")
        with _ipr() as ipr:
            index = ipr.link_lookup(ifname=self.taps[0])[0]
            ipr.addr("add", index=index, address=str(gateway.ip),
                     prefixlen=gateway.network.prefixlen)
            ipr.link("set", index=index, state="up")

    def _tell(self, *words: object) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(" ".join(map(str, words)) + "\n")
        self.process.stdin.flush()

    def attach(self, index: int, netns: str) -> str:
        tap = self.taps[index + 1]
        with _ipr() as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname=tap)[0], net_ns_fd=netns)
        return tap

    def cut(self, index: int) -> None:
        self._tell("cut", index + 1)

    def heal(self, index: int) -> None:
        self._tell("heal", index + 1)

    def impair(self, index: int, loss: float, delay: float) -> None:
        self._tell("impair", index + 1, loss, delay)

    def close(self) -> None:
        # Its TAP devices go with it (they are not persistent).
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Network:
    """Namespaces named after ``names`` on one wire; ``close`` removes every trace."""

    def __init__(self, names: list[str], wire: str = "bridge") -> None:
        from pyroute2 import netns

        self.prefix = "ar" + secrets.token_hex(3)  # interface names stay under 16 bytes
        self.subnet = free_subnet()
        addresses = self.subnet.hosts()
        self.gateway = ipaddress.IPv4Interface(f"{next(addresses)}/{self.subnet.prefixlen}")
        self.hosts: dict[str, Host] = {}
        self.wire: Wire | None = None
        try:
            self.wire = (BridgeWire(self.prefix, self.gateway) if wire == "bridge"
                         else SwitchWire(self.prefix, self.gateway, len(names)))
            for index, name in enumerate(names):
                host = Host(name, f"{self.prefix}-{name}", str(next(addresses)))
                netns.create(host.netns)
                self.hosts[name] = host
                self._configure(host, self.wire.attach(index, host.netns))
        except Exception as exc:
            self.close()
            raise NetworkError(f"could not set up the hosts' network: {exc}") from exc

    def _configure(self, host: Host, ifname: str) -> None:
        with _ipr(host.netns) as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
            index = ipr.link_lookup(ifname=ifname)[0]
            ipr.link("set", index=index, ifname="eth0")
            ipr.addr("add", index=index, address=host.ip, prefixlen=self.subnet.prefixlen)
            ipr.link("set", index=index, state="up")

    def _index(self, name: str) -> int:
        return list(self.hosts).index(name)

    def cut(self, name: str) -> None:
        assert self.wire is not None
        self.wire.cut(self._index(name))

    def heal(self, name: str) -> None:
        assert self.wire is not None
        self.wire.heal(self._index(name))

    def impair(self, name: str, loss: float, delay: float) -> None:
        assert self.wire is not None
        self.wire.impair(self._index(name), loss, delay)

    def close(self) -> None:
        from pyroute2 import netns

        for host in self.hosts.values():
            with contextlib.suppress(OSError):
                netns.remove(host.netns)
        self.hosts.clear()
        if self.wire is not None:
            self.wire.close()
            self.wire = None


def leftovers(prefix: str = "ar") -> list[str]:
    """Namespaces of ours still present (for tests that check teardown)."""
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []
