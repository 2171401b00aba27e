"""``python -m agent_runtime.netns`` (``scripts/cluster.sh``): a cluster of network-namespace
hosts on this machine, until Ctrl-C. As root; the hosts are reachable from this machine at the
addresses it prints, nowhere else.

    scripts/cluster.sh --masters=3 --agents=3          # ZooKeeper too, as there are 3 masters
    scripts/cluster.sh --agents=3 --ready_and_exit     # how long a cluster takes to come up
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
import time

from agent_runtime.errors import RuntimeErrorBase
from agent_runtime.netns.cluster import ClusterSpec, NamespaceCluster


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cluster.sh", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--masters", type=int, default=1)
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--zookeeper", action="store_true", help="even with one master")
    parser.add_argument("--wire", choices=("bridge", "switch"), default="bridge")
    parser.add_argument("--work_dir", help="logs and work dirs (default: a new temp dir)")
    parser.add_argument("--agent_flag", action="append", default=[],
                        help="an extra mesos-agent flag (repeatable)")
    parser.add_argument("--ready_and_exit", action="store_true",
                        help="print the time to a ready cluster, tear it down, exit")
    return parser.parse_args(argv)


def _wait_for_signal() -> None:
    async def wait() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()

    asyncio.run(wait())


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    work_dir = args.work_dir or tempfile.mkdtemp(prefix="mesos-cluster-")
    flags = tuple(args.agent_flag) or ClusterSpec(work_dir).agent_flags
    spec = ClusterSpec(work_dir, args.masters, args.agents, args.zookeeper or None, args.wire,
                       agent_flags=flags)
    started = time.monotonic()
    try:
        cluster = NamespaceCluster(spec).start()
    except RuntimeErrorBase as exc:
        print(f"cluster.sh: {exc}", file=sys.stderr)
        return 1
    try:
        ready = time.monotonic() - started
        print(f"ready in {ready:.2f}s: {spec.masters} master(s), {spec.agents} agent(s); "
              f"logs in {work_dir}")
        for name in cluster.names:
            print(f"  {name:8} {cluster.host(name).ip:15} netns {cluster.host(name).netns}")
        print(f"  leader   {cluster.url(cluster.leader())}   --master={cluster.master}",
              flush=True)
        if not args.ready_and_exit:
            _wait_for_signal()
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
