"""``mesos-master``: start the master's HTTP server and its agent link."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
from dataclasses import dataclass

import grpc
from aiohttp import web

from agent_runtime import flags
from agent_runtime.auth.http_auth import AUTH_KEY
from agent_runtime.errors import FlagError
from agent_runtime.http_guard import ConnectionGuard, HttpLimits
from agent_runtime.logs import setup_logging
from agent_runtime.master import security
from agent_runtime.master.agent_link import AgentLinkService
from agent_runtime.master.config import MasterConfig
from agent_runtime.master.contender import Contender
from agent_runtime.master.http import make_app
from agent_runtime.master.master import Master, advertise
from agent_runtime.proto import internal_pb2_grpc
from agent_runtime.tls import PLAIN, TlsConfig, from_env
from agent_runtime.zookeeper import ZooKeeper, parse_url

log = logging.getLogger(__name__)

# The cyclic collector's thresholds (CPython's default: 700, 10, 10). Offers live for a fraction
# of a second; at the default a young collection every 700 allocations promoted most of them to
# the oldest generation, which then grew by a quarter every ~10 s at 10,000 agents x 100
# frameworks and set off a full collection of the whole heap (~3 million objects, 0.6 s each):
# 18% of the master's CPU in the calls phase of bench/master_scale.py, in pauses no call is
# answered through. With young collections every 5,000 allocations and the middle generation's
# every 50 of them (~250,000 allocations), offers die before they are promoted (GC 1.8 -> 0.5 s
# of CPU in a 20 s window, no full collection); garbage cycles are still all collected.
COLLECTOR_THRESHOLDS = (5000, 50, 10)


# gRPC core keeps the streams that arrive before the asyncio server asks for them in a queue of
# pending calls, and past grpc.server.max_pending_requests (1,000 by default) it starts refusing
# new ones at random, all of them past the hard limit (3,000): the stream ends at once with
# trailers only and our handler never runs. When 10,000 agents connect at once (a cluster's start,
# a master failover) while the event loop admits them, that queue runs to thousands: 900-6,800
# of the emulated agents' registrations were refused that way (CANCELLED or INTERNAL 'Failed
# execute_batch' at the agent, 0-9 s after its stream started; none of them reached Connect), each
# then backed off and tried again. Agents are few and known (each holds one stream), so the limits
# are well above the largest cluster: an agent waits in the queue instead of backing off.
LINK_SERVER_OPTIONS = [("grpc.server.max_pending_requests", 50_000),
                       ("grpc.server.max_pending_requests_hard_limit", 100_000)]


@dataclass
class RunningMaster:
    master: Master
    runner: web.AppRunner
    grpc_server: grpc.aio.Server
    port: int
    link_port: int
    link: AgentLinkService | None = None

    async def stop(self) -> None:
        await self.master.stop()
        await self.grpc_server.stop(grace=0.5)
        if self.link is not None:
            await self.link.pinger.close()
        await self.runner.cleanup()


async def start_master(config: MasterConfig, zookeeper: ZooKeeper | None = None,
                       tls: TlsConfig = PLAIN) -> RunningMaster:
    ssl_context = tls.server_context()  # FlagError before anything listens
    master = Master(config, zookeeper=zookeeper)
    server = grpc.aio.server(options=LINK_SERVER_OPTIONS)
    link = AgentLinkService(master)
    known = security.credentials(config)
    link.authenticate = lambda metadata: security.agent_principal(config, known, metadata)
    internal_pb2_grpc.add_AgentLinkServicer_to_server(link, server)
    address = f"{config.ip}:{config.agent_port}"
    link_port = (server.add_secure_port(address, tls.grpc_server_credentials()) if tls.enabled
                 else server.add_insecure_port(address))
    await server.start()
    app = make_app(master)
    master.launcher.refusal = security.run_tasks_refusal(app[AUTH_KEY].authorizer)
    app["link_port"] = link_port
    guard = ConnectionGuard(HttpLimits(config.max_http_connections,
                                       float(config.http_header_timeout)))
    app.middlewares.insert(0, guard.middleware())  # first: it sees every request arrive
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    assert runner.server is not None
    guard.install(runner.server)
    site = web.TCPSite(runner, config.ip, config.port, reuse_address=True,
                       ssl_context=ssl_context)
    await site.start()
    port = config.port
    if port == 0:
        sockets = site._server.sockets if isinstance(site._server, asyncio.Server) else []
        port = sockets[0].getsockname()[1]
        advertise(master.info, config, port)
    if zookeeper is None:
        master.start()
    log.info("master %s listening on %s:%d (agent link :%d)", master.id, config.ip, port,
             link_port)
    return RunningMaster(master, runner, server, port, link_port, link)


async def serve(config: MasterConfig, tls: TlsConfig = PLAIN) -> int:
    zookeeper = None
    if config.zk:
        if config.quorum is None or config.quorum < 1:
            raise FlagError("--quorum is required with --zk (the number of masters in a quorum)")
        zookeeper = ZooKeeper(parse_url(config.zk), config.zk_session_timeout)
        await asyncio.to_thread(zookeeper.start)
    running = await start_master(config, zookeeper, tls)
    stop = asyncio.Event()
    lost: list[str] = []
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if zookeeper is not None:
        master = running.master

        def follow(address: str | None) -> None:
            master.leader = address

        def lose(why: str) -> None:
            lost.append(why)
            stop.set()

        contender = Contender(zookeeper, master.info, on_elected=master.elected,
                              on_leader=follow, on_lost=lose)
        await contender.start()
    await stop.wait()
    await running.stop()
    if zookeeper is not None:
        await asyncio.to_thread(zookeeper.stop)
    if lost:
        # As Mesos: a master that lost leadership exits, to come back as a fresh contender.
        print(f"mesos-master: lost leadership ({lost[0]}); exiting", file=sys.stderr)
        return 1
    return 0


def tune_collector() -> None:
    gc.set_threshold(*COLLECTOR_THRESHOLDS)


def _main() -> int:
    config = flags.load(MasterConfig, sys.argv[1:], os.environ)
    tune_collector()
    setup_logging(config.quiet, config.log_dir, "mesos-master")
    return asyncio.run(serve(config, from_env(os.environ)))


def main() -> None:
    flags.run_cli(_main)
