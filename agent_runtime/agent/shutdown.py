"""The agent told to shut down by its master (Mesos's ShutdownMessage): the master removed it for
good (an operator marked it gone), so nothing it runs may go on running unseen.

Every framework's executors are shut down as a framework teardown would (their tasks killed
within the grace period), the agent waits for them to end, and forgets its id: ``meta/slaves/
latest`` goes, so a restart on the same work dir registers as a new agent instead of being
refused again. Then the process exits (status 0, as Mesos's agent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

from agent_runtime.agent import paths
from agent_runtime.agent.agent import Agent

log = logging.getLogger(__name__)


async def shut_down(agent: Agent, grace: float) -> None:
    for framework in agent.table.frameworks():
        agent.shutdown_framework(framework.id)
    loop = asyncio.get_running_loop()
    # The supervisor escalates to a destroy one second past each executor's grace period.
    deadline = loop.time() + grace + 5.0
    while any(True for _ in agent.table.executors()):
        if loop.time() > deadline:
            log.error("executors still running at shutdown: %s",
                      ", ".join(e.id for e in agent.table.executors()))
            break
        await asyncio.sleep(0.1)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(paths.meta_latest(agent.config.work_dir))
    log.warning("agent shut down: its executors are gone and its id forgotten")
