"""The executor side of the agent: launch an executor's container, watch its process, give it
a deadline to subscribe, shut it down, and end it when its process exits.

    REGISTERING --launch(), or adopted by recovery--> watch(process)
        --subscribes in time (Agent.executor_subscribed)--> RUNNING
        --not subscribed by the deadline--> destroyed (its exit follows)
        --shutdown()--> TERMINATING: SHUTDOWN sent, destroyed after the grace period
        --process exits--> terminated(): TERMINATED, tasks not over fail, executor_exited sent

A launched executor has ``--executor_registration_timeout`` (its queued tasks then fail with
REASON_EXECUTOR_REGISTRATION_TIMEOUT); one adopted after an agent restart has
``--executor_reregistration_timeout``, and its exit status is unknown (it is not our child).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import uuid
from typing import TYPE_CHECKING

from agent_runtime.agent import paths
from agent_runtime.agent.config import AgentConfig
from agent_runtime.agent.model import Executor, ExecutorState, FrameworkRecord
from agent_runtime.containerizer.containerizer import ContainerConfig
from agent_runtime.containerizer.launcher import Process
from agent_runtime.containerizer.mesos import COMMAND_EXECUTOR
from agent_runtime.errors import LaunchError
from agent_runtime.proto import executor_pb2, internal_pb2, mesos_pb2
from agent_runtime.resources import Resources
from agent_runtime.task_states import TERMINAL_STATES

if TYPE_CHECKING:
    from agent_runtime.agent.agent import Agent

log = logging.getLogger(__name__)

Status = mesos_pb2.TaskStatus
Event = executor_pb2.Event
# Mesos adds this much on top of a command task for its executor (DEFAULT_EXECUTOR_CPUS/MEM).
EXECUTOR_CPUS = 0.1
EXECUTOR_MEM = 32.0
_ADOPTED_EXIT = "terminated (exit status unknown: it was adopted after an agent restart)"


def executor_info_for(framework_id: str, task: mesos_pb2.TaskInfo) -> mesos_pb2.ExecutorInfo:
    """The task's own executor, or the command executor Mesos would generate for it."""
    if task.HasField("executor"):
        info = mesos_pb2.ExecutorInfo()
        info.CopyFrom(task.executor)
        info.framework_id.value = framework_id
        return info
    info = mesos_pb2.ExecutorInfo(type=mesos_pb2.ExecutorInfo.DEFAULT)
    info.executor_id.value = task.task_id.value
    info.framework_id.value = framework_id
    command = task.command.value if task.command.shell else shlex.join(
        task.command.arguments or [task.command.value]
    )
    info.name = f"Command Executor (Task: {task.task_id.value}) (Command: sh -c '{command}')"
    info.source = task.task_id.value
    info.command.value = COMMAND_EXECUTOR
    info.resources.extend(
        (Resources.from_proto(task.resources)
         + Resources.scalar_of("cpus", EXECUTOR_CPUS)
         + Resources.scalar_of("mem", EXECUTOR_MEM)).to_proto()
    )
    if task.HasField("container"):
        info.container.CopyFrom(task.container)
    return info


def task_user(switch_user: bool, framework_info: mesos_pb2.FrameworkInfo,
              executor: Executor) -> str | None:
    """``--switch_user``: the command's user, else the framework's (Mesos's rule); None runs the
    task as the agent's own user."""
    if not switch_user:
        return None
    tasks = list(executor.queued.values())
    command = tasks[0].command if executor.command_executor and tasks \
        else executor.info.command
    return command.user or framework_info.user or None


def shutdown_grace(config: AgentConfig, executor: Executor) -> float:
    """``ExecutorInfo.shutdown_grace_period`` if set, else ``--executor_shutdown_grace_period``."""
    if executor.info.HasField("shutdown_grace_period"):
        return max(executor.info.shutdown_grace_period.nanoseconds, 0) / 1e9
    return float(config.executor_shutdown_grace_period)


class ExecutorSupervisor:
    """Owns executors' processes for the agent; :class:`Agent` owns frameworks, tasks, updates."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        # Runs whose executor ended while updates of its tasks are still unacknowledged: their
        # sentinel waits for the last acknowledgement (a crash before it must resend them).
        self.unfinished_runs: dict[str, tuple[FrameworkRecord, Executor, set[str]]] = {}

    # Launch --------------------------------------------------------------------------------
    def new_executor(self, framework: FrameworkRecord, info: mesos_pb2.ExecutorInfo
                     ) -> Executor:
        agent = self.agent
        container_id = str(uuid.uuid4())
        directory = paths.sandbox(agent.config.work_dir, agent.id, framework.id,
                                  info.executor_id.value, container_id)
        executor = Executor(framework.id, info, container_id, directory,
                            command_executor=info.command.value == COMMAND_EXECUTOR)
        framework.executors[executor.id] = executor
        return executor

    async def launch(self, framework: FrameworkRecord, executor: Executor) -> None:
        """Start the executor's container; if that fails, its tasks fail and it ends."""
        try:
            await self._launch(framework, executor)
        except Exception as exc:  # whatever broke, the task hears of it
            # LaunchError and OSError (the sandbox, a checkpoint) are expected; anything
            # else is a bug, logged with its traceback, but still fails just this task
            # instead of leaving it STAGING for good.
            expected = isinstance(exc, LaunchError | OSError)
            log.warning("executor %s failed to launch: %s", executor.id, exc,
                        exc_info=not expected)
            if not expected:
                exc = LaunchError(f"{type(exc).__name__}: {exc}")
            # The executor may have its task already (it subscribes while the container
            # starts): fail it here, with the reason, before the executor's exit would.
            self._fail_queued(executor, Status.REASON_CONTAINER_LAUNCH_FAILED, str(exc))
            for launched in list(executor.launched.values()):
                if launched.state not in TERMINAL_STATES:
                    self.agent.agent_update(framework.id, launched, mesos_pb2.TASK_FAILED,
                                            Status.REASON_CONTAINER_LAUNCH_FAILED, str(exc),
                                            executor)
            self.terminated(executor, -1)

    async def _launch(self, framework: FrameworkRecord, executor: Executor) -> None:
        agent = self.agent
        os.makedirs(executor.directory, exist_ok=True)
        latest = os.path.join(os.path.dirname(executor.directory), "latest")
        try:
            if os.path.islink(latest):
                os.unlink(latest)
            os.symlink(executor.container_id, latest)
        except OSError:
            pass

        def forked(process: Process) -> None:
            # Before the launch completes: a Docker executor has its task while the container
            # is still being created and started.
            if framework.info.checkpoint:
                agent.checkpointer.run(agent.id, framework.info, executor.info,
                                       executor.container_id, process.pid, process.start_time)

        process = await agent.containerizer.launch(ContainerConfig(
            container_id=executor.container_id, agent_id=agent.id, framework_info=framework.info,
            executor_info=executor.info, tasks=tuple(executor.queued.values()),
            command_executor=executor.command_executor, directory=executor.directory,
            environment=agent.executor_env(framework, executor), forked=forked,
            user=task_user(agent.config.switch_user, framework.info, executor),
        ))
        self.watch(executor, process)
        # A container may take a while to start (an image to load): a shutdown that came
        # meanwhile found no process to stop, so it is carried out now.
        if executor.state == ExecutorState.TERMINATING:
            self.destroy(executor, 0.0)

    # Watch: exit and the deadline to subscribe ---------------------------------------------
    def watch(self, executor: Executor, process: Process, *, adopted: bool = False) -> None:
        """Take ``process`` as the executor's: its exit ends the executor, and one still
        REGISTERING is destroyed unless it subscribes in time (``adopted``: re-subscribes, after
        an agent restart)."""
        executor.process = process
        detail = _ADOPTED_EXIT if adopted else None
        process.exited.add_done_callback(
            lambda fut: self.terminated(executor, fut.result(), detail)
        )
        if executor.state == ExecutorState.REGISTERING:
            executor.timer = asyncio.get_running_loop().call_later(
                self._registration_deadline(adopted), self._registration_timeout, executor,
                adopted,
            )

    def _registration_deadline(self, adopted: bool) -> float:
        config = self.agent.config
        if adopted:
            return config.executor_reregistration_timeout
        return config.executor_registration_timeout

    def _registration_timeout(self, executor: Executor, adopted: bool) -> None:
        if executor.state != ExecutorState.REGISTERING:
            return
        timeout = self._registration_deadline(adopted)
        if adopted:
            log.warning("executor %s did not re-subscribe within %gs; destroying it",
                        executor.id, timeout)
        else:
            log.warning("executor %s did not subscribe in time; destroying it", executor.id)
            self._fail_queued(executor, Status.REASON_EXECUTOR_REGISTRATION_TIMEOUT,
                              f"Executor did not register within {timeout:g}secs")
        self.destroy(executor, 0.0)

    # Shutdown ------------------------------------------------------------------------------
    def destroy(self, executor: Executor, grace: float) -> None:
        if executor.process is not None:
            asyncio.get_running_loop().create_task(
                self.agent.containerizer.destroy(executor.container_id, executor.process, grace)
            )

    def shutdown(self, executor: Executor) -> None:
        if executor.state in (ExecutorState.TERMINATING, ExecutorState.TERMINATED):
            return
        executor.transition(ExecutorState.TERMINATING)
        if executor.stream is not None:
            self.agent.send_event(executor, Event(type=Event.SHUTDOWN))
        # The executor gets the grace period to kill its tasks; the small extra covers our own
        # SIGTERM-to-SIGKILL escalation inside it.
        grace = shutdown_grace(self.agent.config, executor)
        if executor.process is not None:
            asyncio.get_running_loop().call_later(
                grace + 1.0, lambda: self._destroy_if_alive(executor)
            )
            if executor.stream is None:
                self.destroy(executor, grace)

    def _destroy_if_alive(self, executor: Executor) -> None:
        if executor.process is not None and not executor.process.exited.done():
            self.destroy(executor, 0.0)

    # Exit ----------------------------------------------------------------------------------
    def lost(self, executor: Executor) -> None:
        """An executor found gone at recovery."""
        self.terminated(executor, -1, "terminated while the agent was down")

    def _fail_queued(self, executor: Executor, reason: int, message: str) -> None:
        for task in list(executor.queued.values()):
            self.agent.agent_update(executor.framework_id, task, mesos_pb2.TASK_FAILED, reason,
                                    message)
        executor.queued.clear()

    def finish_run(self, framework_id: str, task_id: str) -> None:
        """An update of ``task_id`` was acknowledged: a run waiting for it may be done."""
        agent = self.agent
        for container_id, (framework, executor, pending) in list(self.unfinished_runs.items()):
            if framework.id != framework_id or task_id not in pending:
                continue
            if not agent.updates.pending(framework_id, task_id):
                pending.discard(task_id)
            if not pending:
                del self.unfinished_runs[container_id]
                agent.checkpointer.run_done(agent.id, framework_id, executor.id, container_id)

    def terminated(self, executor: Executor, status: int, detail: str | None = None) -> None:
        agent = self.agent
        if executor.state == ExecutorState.TERMINATED:
            return
        executor.transition(ExecutorState.TERMINATED)
        if executor.timer is not None:
            executor.timer.cancel()
        if executor.stream is not None:
            executor.stream.close()
            executor.stream = None
        if detail is None:
            detail = f"exited with status {status}" if status >= 0 else \
                f"terminated with signal {-status}"
        self._fail_queued(executor, Status.REASON_EXECUTOR_TERMINATED, f"Executor {detail}")
        # A container destroyed for breaking a limit fails its tasks with that limit's reason.
        limitation = agent.containerizer.limitation(executor.container_id)
        for task in list(executor.launched.values()):
            if task.state in TERMINAL_STATES:
                continue
            if limitation is not None:
                agent.agent_update(executor.framework_id, task, mesos_pb2.TASK_FAILED,
                                   limitation.reason, limitation.message, executor)
                continue
            killed = task.task_id.value in executor.killed
            state = mesos_pb2.TASK_KILLED if killed else mesos_pb2.TASK_FAILED
            agent.agent_update(executor.framework_id, task, state,
                               Status.REASON_EXECUTOR_TERMINATED, f"Executor {detail}",
                               executor)
        framework = agent.frameworks.get(executor.framework_id)
        if framework is not None and framework.info.checkpoint:
            pending = {t for t in executor.launched
                       if agent.updates.pending(framework.id, t)}
            if pending:
                self.unfinished_runs[executor.container_id] = (framework, executor, pending)
            else:
                agent.checkpointer.run_done(agent.id, framework.id, executor.id,
                                            executor.container_id)
        if framework is not None:
            framework.executors.pop(executor.id, None)
            framework.completed_executors.append(executor)
            if not framework.executors:
                agent.frameworks.pop(framework.id, None)
                agent.completed_frameworks.append(framework)
                del agent.completed_frameworks[:-50]
                if framework.removed:  # the master forgot it: nobody will acknowledge
                    agent.updates.forget_framework(framework.id)
        asyncio.get_running_loop().create_task(agent.containerizer.cleanup(executor.container_id))
        exited = internal_pb2.AgentMessage()
        exited.executor_exited.framework_id.value = executor.framework_id
        exited.executor_exited.executor_id.value = executor.id
        exited.executor_exited.status = status
        agent.send_to_master(exited)
