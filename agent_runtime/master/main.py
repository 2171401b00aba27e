"""``mesos-master``: start the master's HTTP server and its agent link."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from dataclasses import dataclass

import grpc
from aiohttp import web

from agent_runtime import flags
from agent_runtime.logs import setup_logging
from agent_runtime.master.agent_link import AgentLinkService
from agent_runtime.master.config import MasterConfig
from agent_runtime.master.http import make_app
from agent_runtime.master.master import Master
from agent_runtime.proto import internal_pb2_grpc

log = logging.getLogger(__name__)


@dataclass
class RunningMaster:
    master: Master
    runner: web.AppRunner
    grpc_server: grpc.aio.Server
    port: int
    link_port: int

    async def stop(self) -> None:
        await self.master.stop()
        await self.grpc_server.stop(grace=0.5)
        await self.runner.cleanup()


async def start_master(config: MasterConfig) -> RunningMaster:
    master = Master(config)
    server = grpc.aio.server()
    internal_pb2_grpc.add_AgentLinkServicer_to_server(AgentLinkService(master), server)
    link_port = server.add_insecure_port(f"{config.ip}:{config.agent_port}")
    await server.start()
    app = make_app(master)
    app["link_port"] = link_port
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.ip, config.port, reuse_address=True)
    await site.start()
    port = config.port
    if port == 0:
        sockets = site._server.sockets if isinstance(site._server, asyncio.Server) else []
        port = sockets[0].getsockname()[1]
        master.info.port = port
        master.info.address.port = port
        master.info.pid = f"master@{config.ip}:{port}"
    master.start()
    log.info("master %s listening on %s:%d (agent link :%d)", master.id, config.ip, port,
             link_port)
    return RunningMaster(master, runner, server, port, link_port)


async def serve(config: MasterConfig) -> None:
    running = await start_master(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await running.stop()


def _main() -> int:
    config = flags.load(MasterConfig, sys.argv[1:], os.environ)
    setup_logging(config.quiet, config.log_dir, "mesos-master")
    if config.zk:
        print("--zk is not supported yet (master high availability is a later issue)",
              file=sys.stderr)
        return 1
    asyncio.run(serve(config))
    return 0


def main() -> None:
    flags.run_cli(_main)
