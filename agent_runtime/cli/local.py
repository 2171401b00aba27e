"""``mesos-local``: a master and ``--num_agents`` agents in one process (the embedded default).

Each agent gets its own port (5051, 5052, ...) and work dir (``<work_dir>/agents/<n>``), and a
share of the host's resources unless ``--resources`` is given. With ``--command`` it also runs
that command as a task through the cluster, prints its updates, and exits with its result.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
from dataclasses import dataclass, replace

from agent_runtime import flags
from agent_runtime.agent.config import AgentConfig
from agent_runtime.agent.main import start_agent
from agent_runtime.cli.execute import ExecuteConfig, run
from agent_runtime.flags import flag
from agent_runtime.logs import setup_logging
from agent_runtime.master.config import MasterConfig
from agent_runtime.master.main import start_master
from agent_runtime.tls import PLAIN, TlsConfig, from_env


@dataclass(frozen=True)
class LocalConfig:
    ip: str = flag("127.0.0.1", "IP address to listen on")
    port: int = flag(5050, "Master port; agents use the following ports")
    num_agents: int = flag(1, "Number of agents")
    work_dir: str | None = flag(None, "Work directory (a fresh temporary one when unset)")
    resources: str | None = flag(None, "Resources of each agent")
    isolation: str = flag("posix/cpu,posix/mem", "Isolators of each agent")
    containerizers: str = flag("mesos", "Containerizers of each agent")
    command: str | None = flag(None, "Run this command as a task, then exit with its result")
    quiet: bool = flag(True, "Log warnings only")


async def serve(config: LocalConfig, tls: TlsConfig = PLAIN) -> int:
    work_dir = config.work_dir or tempfile.mkdtemp(prefix="mesos-local-")
    master = await start_master(MasterConfig(ip=config.ip, port=config.port,
                                             work_dir=os.path.join(work_dir, "master")),
                                tls=tls)
    agents = []
    for index in range(config.num_agents):
        agent_config = AgentConfig(
            master=f"{config.ip}:{master.port}", ip=config.ip,
            port=0 if config.port == 0 else config.port + 1 + index,
            work_dir=os.path.join(work_dir, "agents", str(index)),
            resources=config.resources, isolation=config.isolation,
            containerizers=config.containerizers, registration_backoff_factor=flags.Duration(0.1),
        )
        agents.append(await start_agent(agent_config, tls))
    for running in agents:
        await asyncio.wait_for(running.link.registered.wait(), 30)
    print(f"mesos-local: master at {config.ip}:{master.port} with {len(agents)} agent(s); "
          f"work dir {work_dir}", flush=True)
    try:
        if config.command:
            execute = replace(ExecuteConfig(), master=f"{config.ip}:{master.port}",
                              name="mesos-local-task", command=config.command,
                              resources="cpus:0.1;mem:32")
            code = await run(execute, tls)
            sandbox = _latest_sandbox(work_dir)
            if sandbox:
                print(f"Sandbox: {sandbox}")
                with open(os.path.join(sandbox, "stdout"), errors="replace") as handle:
                    print("--- stdout ---\n" + handle.read(), end="")
            return code
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        return 0
    finally:
        for running in agents:
            await running.stop()
        await master.stop()


def _latest_sandbox(work_dir: str) -> str | None:
    best: tuple[float, str] | None = None
    for root, _dirs, files in os.walk(os.path.join(work_dir, "agents")):
        if "stdout" in files:
            mtime = os.path.getmtime(os.path.join(root, "stdout"))
            if best is None or mtime > best[0]:
                best = (mtime, root)
    return best[1] if best else None


def _main() -> int:
    config = flags.load(LocalConfig, sys.argv[1:], os.environ)
    setup_logging(config.quiet, None, "mesos-local")
    return asyncio.run(serve(config, from_env(os.environ)))


def main() -> None:
    flags.run_cli(_main)
