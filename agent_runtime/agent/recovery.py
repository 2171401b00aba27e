"""Agent recovery (``--recover=reconnect``): after a restart, take back the executors of
checkpointing frameworks that still run, with their tasks and unacknowledged status updates.

    checkpoints (meta/) --recover()--> executors REGISTERING, adopted by pid + start time
        --executor re-SUBSCRIBEs--> RUNNING, as before the restart
        --not back within --executor_reregistration_timeout--> destroyed; tasks fail

An executor that died while the agent was away is handled as any executor exit: its tasks that
are not known to be over fail. Update streams are taken back whole, so an update accepted
before the crash is sent (and retried) until the scheduler acknowledges it, exactly once.

This module only reads: :func:`recover` returns what it found and ``Agent.adopt`` takes it in
(the executor table, the update streams, the supervisor's watch). The writing side is the
agent's checkpointer.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field
from typing import Protocol

from agent_runtime.agent import paths
from agent_runtime.agent.checkpoint import RecoveredRun, RecoveredState
from agent_runtime.agent.model import Executor
from agent_runtime.containerizer.launcher import Process
from agent_runtime.containerizer.mesos import COMMAND_EXECUTOR
from agent_runtime.executor_kind import ExecutorKind, kind_of
from agent_runtime.proto import internal_pb2, mesos_pb2

log = logging.getLogger(__name__)


class Adopter(Protocol):
    """What recovery asks of the containerizer (the composing one, in the agent)."""

    def adopt(self, container_id: str, info: mesos_pb2.ExecutorInfo, pid: int,
              start_time: float) -> Process | None: ...

    async def destroy(self, container_id: str, process: Process, grace: float) -> None: ...


@dataclass(slots=True)
class RecoveredExecutor:
    """One checkpointed executor, rebuilt: ``process`` None when it is gone."""

    framework: mesos_pb2.FrameworkInfo
    executor: Executor
    process: Process | None
    pid: int
    streams: dict[str, internal_pb2.UpdateStream] = field(default_factory=dict)


def recover(state: RecoveredState, containerizer: Adopter
            ) -> list[RecoveredExecutor]:
    """Rebuild executors from checkpoints and adopt the processes that still run."""
    recovered = []
    for run in state.runs:
        process = containerizer.adopt(run.container_id, run.executor, run.pid, run.start_time)
        streams = {task_id: stream for task_id, stream in run.streams.items() if stream.pending}
        recovered.append(RecoveredExecutor(run.framework, executor_of(run), process, run.pid,
                                           streams))
    return recovered


def recovered_kind(run: RecoveredRun) -> ExecutorKind:
    """The kind the agent checkpointed; for a checkpoint from before the kind was written, the
    shared rule, or the command naming this install's command executor (the rule of then)."""
    if run.kind is not None:
        return run.kind
    kind = kind_of(run.executor)
    if kind is ExecutorKind.CUSTOM and run.executor.command.value == COMMAND_EXECUTOR:
        return ExecutorKind.COMMAND
    return kind


def executor_of(run: RecoveredRun) -> Executor:
    executor = Executor(run.framework.id.value, run.executor, run.container_id, run.directory,
                        kind=recovered_kind(run))
    for task_id, task in run.tasks.items():
        stream = run.streams.get(task_id)
        if stream is not None and stream.pending:
            # What the executor last said, even if the scheduler has not acknowledged it yet:
            # restored as checkpointed, not a move of the task's state.
            task.state = stream.pending[-1].status.state
        executor.launched[task_id] = task
    return executor


async def clean_up(work_dir: str, state: RecoveredState,
                   containerizer: Adopter) -> list[str]:
    """``--recover=cleanup``: kill what the checkpoints say still runs and start afresh."""
    for run in state.runs:
        process = containerizer.adopt(run.container_id, run.executor, run.pid, run.start_time)
        if process is not None:
            log.warning("--recover=cleanup: killing executor %s (pid %d)",
                        run.executor.executor_id.value, run.pid)
            await containerizer.destroy(run.container_id, process, 0.0)
    with contextlib.suppress(OSError):
        os.remove(paths.meta_latest(work_dir))
    return []
