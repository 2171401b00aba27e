"""Clusters of network-namespace hosts (``agent_runtime/netns``) for tests across hosts, and
what a test does from inside a host."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

from agent_runtime.netns.cluster import ZK_SERVER, ClusterSpec, NamespaceCluster
from agent_runtime.netns.network import leftovers
from agent_runtime.proto import mesos_pb2
from tests.harness.execute import mounts_under
from tests.harness.framework import TestFramework
from tests.harness.needs import require, require_root


@contextlib.contextmanager
def namespace_cluster(work_dir: str, **fields: Any) -> Iterator[NamespaceCluster]:
    """A started cluster of namespace hosts (``ClusterSpec`` fields); gone afterwards."""
    require_root("network namespaces, a bridge and veth pairs")
    require(shutil.which("nsenter") is not None, "nsenter (util-linux) to run in a namespace")
    spec = ClusterSpec(work_dir, **fields)
    if spec.wire == "switch":
        require(os.path.exists("/dev/net/tun"), "/dev/net/tun for the switch's TAP devices")
    if spec.uses_zookeeper:
        require(os.path.exists(ZK_SERVER) and shutil.which("java") is not None,
                "ZooKeeper (apt-get install zookeeper; scripts/deps.sh does)")
    cluster = NamespaceCluster(spec).start()
    try:
        yield cluster
    finally:
        prefix = cluster.network.prefix if cluster.network is not None else "-"
        cluster.stop()
        # Image tasks leave their rootfs mounted when a test fails half way.
        for mount in reversed(mounts_under(work_dir)):
            subprocess.run(["umount", "-l", mount], check=False)
        assert leftovers(prefix) == [], "namespaces left behind"


def run_in(cluster: NamespaceCluster, host: str, code: str, timeout: float = 20) -> str:
    """Run Python ``code`` in ``host``'s network namespace; its stdout."""
    done = subprocess.run(cluster.host(host).argv([sys.executable, "-c", code]),
                          capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def offers_from(framework: TestFramework, agents: int,
                      timeout: float = 20.0) -> dict[str, mesos_pb2.Offer]:
    """One offer per agent (by hostname), once offers from ``agents`` agents have come."""
    found: dict[str, mesos_pb2.Offer] = {}
    while len(found) < agents:
        for offer in await framework.offers(timeout):
            found[offer.hostname] = offer
    return found
