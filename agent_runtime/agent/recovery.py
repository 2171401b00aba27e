"""Agent recovery (``--recover=reconnect``): after a restart, take back the executors of
checkpointing frameworks that still run, with their tasks and unacknowledged status updates.

    checkpoints (meta/) --recover()--> executors REGISTERING, adopted by pid + start time
        --executor re-SUBSCRIBEs--> RUNNING, as before the restart
        --not back within --executor_reregistration_timeout--> destroyed; tasks fail

An executor that died while the agent was away is handled as any executor exit: its tasks that
are not known to be over fail. Update streams are taken back whole, so an update accepted
before the crash is sent (and retried) until the scheduler acknowledges it, exactly once.
The writing side is :func:`checkpoint_stream`, called whenever a task's stream changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import TYPE_CHECKING

from agent_runtime.agent import paths
from agent_runtime.agent.checkpoint import RecoveredRun, RecoveredState
from agent_runtime.agent.model import Executor, FrameworkRecord
from agent_runtime.containerizer.mesos import COMMAND_EXECUTOR

if TYPE_CHECKING:
    from agent_runtime.agent.agent import Agent
    from agent_runtime.containerizer.composing import ComposingContainerizer

log = logging.getLogger(__name__)


def checkpoint_stream(agent: Agent, framework_id: str, task_id: str
                      ) -> asyncio.Future[None] | None:
    """Write a task's update stream (and its latest state) for a checkpointing framework;
    returns what to wait for before the change may be told (None: nothing)."""
    framework = agent.frameworks.get(framework_id)
    if framework is None or not framework.info.checkpoint:
        return None
    for executor in list(framework.executors.values()):
        task = executor.launched.get(task_id)
        if task is None:
            continue
        agent.checkpointer.task(agent.id, framework_id, executor.id, executor.container_id, task)
        agent.checkpointer.updates(agent.id, framework_id, executor.id, executor.container_id,
                                   task_id, agent.updates.snapshot(framework_id, task_id))
        break
    return agent.checkpoint_writer.durable()


def recover(agent: Agent, state: RecoveredState, containerizer: ComposingContainerizer
            ) -> list[str]:
    """Rebuild executors from checkpoints; returns the container ids still worth keeping."""
    known = []
    for run in state.runs:
        for task_id, stream in run.streams.items():
            if stream.pending:
                agent.updates.restore(run.framework.id.value, task_id, stream)
        process = containerizer.adopt(run.container_id, run.executor, run.pid, run.start_time)
        executor = _executor(agent, run)
        if process is None:
            log.warning("executor %s of framework %s is gone; its tasks end", executor.id,
                        executor.framework_id)
            # Terminated from the event loop, as a live exit would be.
            asyncio.get_running_loop().call_soon(agent.supervisor.lost, executor)
            continue
        known.append(run.container_id)
        # Watched as a launched executor is, with the re-registration timeout.
        agent.supervisor.watch(executor, process, adopted=True)
        log.info("recovered executor %s of framework %s (pid %d)", executor.id,
                 executor.framework_id, run.pid)
    return known


def _executor(agent: Agent, run: RecoveredRun) -> Executor:
    framework_id = run.framework.id.value
    framework = agent.frameworks.get(framework_id)
    if framework is None:
        framework = agent.frameworks[framework_id] = FrameworkRecord(run.framework)
    executor = Executor(framework_id, run.executor, run.container_id, run.directory,
                        command_executor=run.executor.command.value == COMMAND_EXECUTOR)
    for task_id, task in run.tasks.items():
        stream = run.streams.get(task_id)
        if stream is not None and stream.pending:
            # What the executor last said, even if the scheduler has not acknowledged it yet.
            task.state = stream.pending[-1].status.state
        executor.launched[task_id] = task
    framework.executors[executor.id] = executor
    return executor


async def clean_up(agent: Agent, state: RecoveredState,
                   containerizer: ComposingContainerizer) -> list[str]:
    """``--recover=cleanup``: kill what the checkpoints say still runs and start afresh."""
    for run in state.runs:
        process = containerizer.adopt(run.container_id, run.executor, run.pid, run.start_time)
        if process is not None:
            log.warning("--recover=cleanup: killing executor %s (pid %d)",
                        run.executor.executor_id.value, run.pid)
            await containerizer.destroy(run.container_id, process, 0.0)
    with contextlib.suppress(OSError):
        os.remove(paths.meta_latest(agent.config.work_dir))
    return []
