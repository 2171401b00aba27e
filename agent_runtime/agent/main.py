"""``mesos-agent``: discover resources, serve the executor API, register with the master."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass

from aiohttp import web

from agent_runtime import flags
from agent_runtime.agent import recovery, security
from agent_runtime.agent.agent import Agent
from agent_runtime.agent.checkpoint import Checkpointer
from agent_runtime.agent.composition import build_containerizer
from agent_runtime.agent.config import AgentConfig
from agent_runtime.agent.discovery import detect, parse_attributes
from agent_runtime.agent.http import make_app
from agent_runtime.agent.master_link import MasterLink
from agent_runtime.agent.shutdown import shut_down
from agent_runtime.auth.http_auth import AUTH_KEY, auth_middleware
from agent_runtime.errors import FlagError, RuntimeErrorBase
from agent_runtime.http_guard import ConnectionGuard, HttpLimits
from agent_runtime.logs import setup_logging
from agent_runtime.proto import mesos_pb2
from agent_runtime.tls import PLAIN, TlsConfig, from_env

log = logging.getLogger(__name__)


@dataclass
class RunningAgent:
    agent: Agent
    link: MasterLink
    runner: web.AppRunner
    port: int

    async def stop(self) -> None:
        await self.link.stop()
        # Executor subscriptions are open-ended responses: end them, or the server's clean-up
        # waits for them. The executors themselves are left running (see README).
        for executor in self.agent.table.executors():
            if executor.stream is not None:
                executor.stream.close()
        await self.runner.shutdown()
        await self.runner.cleanup()
        await self.agent.checkpoint_writer.flush()  # what was asked, before we go
        self.agent.checkpoint_writer.close()
        await self.agent.containerizer.close()


async def start_agent(config: AgentConfig, tls: TlsConfig = PLAIN) -> RunningAgent:
    if not config.master:
        raise FlagError("--master is required")
    if not config.work_dir:
        raise FlagError("--work_dir is required")
    try:
        resources = detect(config.work_dir, config.resources, config.default_role,
                           config.isolation)
        attributes = parse_attributes(config.attributes)
    except (RuntimeErrorBase, ValueError) as exc:
        raise FlagError(str(exc)) from exc
    ssl_context = tls.server_context()  # FlagError before anything starts
    hostname = config.hostname or socket.gethostname()
    info = mesos_pb2.AgentInfo(hostname=hostname, port=config.advertise_port or config.port)
    info.resources.extend(resources.to_proto())
    info.attributes.extend(attributes)
    if config.recover not in ("reconnect", "cleanup"):
        raise FlagError(f"--recover must be 'reconnect' or 'cleanup', not {config.recover!r}")
    state = Checkpointer(config.work_dir, strict=config.strict).recover()
    if state.agent_info is not None and not state.rebooted:
        info.id.CopyFrom(state.agent_info.id)  # re-register as the agent we were
    checkpointed_id = state.agent_info.id.value if state.agent_info is not None else None
    containerizer = await build_containerizer(config, checkpointed_id)
    app_agent = Agent(config, info, resources, containerizer)
    app_agent.environment = dataclasses.replace(app_agent.environment,
                                                tls=tls.executor_environment())
    if config.recover == "cleanup":
        known = await recovery.clean_up(config.work_dir, state, containerizer)
        info.ClearField("id")
    else:
        known = app_agent.adopt(recovery.recover(state, containerizer))
    # Before serving: containers the checkpoints do not account for are orphans to remove.
    await containerizer.recover(known=known)
    app = make_app(app_agent)
    auth = security.http_auth_config(config)
    app.middlewares.append(auth_middleware(auth))
    app.middlewares.append(security.sandbox_guard(app_agent.table, config.work_dir,
                                                  lambda: app_agent.id))
    app[AUTH_KEY] = auth
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
        server = site._server
        assert isinstance(server, asyncio.Server)
        port = server.sockets[0].getsockname()[1]
        if not config.advertise_port:
            app_agent.info.port = port
            app_agent.endpoint = f"{config.advertise_ip or config.ip}:{port}"
    app_agent.supervisor.serving()  # executors adopted above may now re-subscribe
    link = MasterLink(app_agent, config.master, config.registration_backoff_factor, tls)
    link.metadata = security.link_metadata(config)
    link.start()
    log.info("agent listening on %s:%d with %s", config.ip, port, resources.text())
    return RunningAgent(app_agent, link, runner, port)


async def serve(config: AgentConfig, tls: TlsConfig = PLAIN) -> int:
    running = await start_agent(config, tls)
    code = 0
    stop = asyncio.Event()
    tasks: set[asyncio.Task[None]] = set()

    def refused(shutdown: bool, why: str) -> None:
        nonlocal code
        if not shutdown:  # refused (credentials): the operator must act, as Mesos's EXIT(1)
            code = 1
            stop.set()
            return
        ending = asyncio.get_running_loop().create_task(
            shut_down(running.agent, float(config.executor_shutdown_grace_period)))
        ending.add_done_callback(lambda _: stop.set())
        tasks.add(ending)

    running.link.on_refused = refused
    # What start-up built (modules, protobuf descriptors, aiohttp and gRPC) lives as long as
    # the agent: out of the collector's sight, so its full collections, which came every few
    # launches in a batch, walk only what launches make (they were ~10% of the agent's CPU).
    gc.freeze()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await running.stop()
    return code


def _main() -> int:
    config = flags.load(AgentConfig, sys.argv[1:], os.environ)
    setup_logging(config.quiet, config.log_dir, "mesos-agent")
    return asyncio.run(serve(config, from_env(os.environ)))


def main() -> None:
    flags.run_cli(_main)
