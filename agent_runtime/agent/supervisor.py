"""The executor side of the agent: launch an executor's container, watch its process, give it
a deadline to subscribe, shut it down, and end it when its process exits.

    REGISTERING --launch(), or adopted by recovery--> watch(process)
        --subscribes in time (Agent.executor_subscribed)--> RUNNING
        --not subscribed by the deadline--> destroyed (its exit follows)
        --shutdown()--> TERMINATING: SHUTDOWN sent, destroyed after the grace period
        --process exits--> terminated(): TERMINATED, tasks not over fail, callbacks.exited

The supervisor holds no Agent: it keeps the executor table and calls the agent back through
:class:`SupervisorCallbacks` (task updates, the exit), as the status update manager does.

A launched executor has ``--executor_registration_timeout`` (its queued tasks then fail with
REASON_EXECUTOR_REGISTRATION_TIMEOUT); one adopted after an agent restart has
``--executor_reregistration_timeout``, and its exit status is unknown (it is not our child).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import shlex
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from agent_runtime.agent import paths
from agent_runtime.agent.checkpoint import Checkpointer
from agent_runtime.agent.config import AgentConfig
from agent_runtime.agent.executor_table import ExecutorTable
from agent_runtime.agent.model import Executor, ExecutorState, FrameworkRecord
from agent_runtime.agent.recovery import RecoveredExecutor
from agent_runtime.containerizer.containerizer import ContainerConfig, Containerizer
from agent_runtime.containerizer.launcher import Process
from agent_runtime.containerizer.mesos import COMMAND_EXECUTOR
from agent_runtime.errors import LaunchError
from agent_runtime.executor_kind import command_executor_name, kind_of
from agent_runtime.proto import executor_pb2, internal_pb2, mesos_pb2
from agent_runtime.resources import Resources
from agent_runtime.task_states import TERMINAL_STATES, Reason, TaskState

log = logging.getLogger(__name__)

Status = mesos_pb2.TaskStatus
Event = executor_pb2.Event
# Mesos adds this much on top of a command task for its executor (DEFAULT_EXECUTOR_CPUS/MEM).
EXECUTOR_CPUS = 0.1
EXECUTOR_MEM = 32.0
SANDBOX_THREADS = 4  # a batch's sandboxes made side by side (the kernel work runs in parallel)
_ADOPTED_EXIT = "terminated (exit status unknown: it was adopted after an agent restart)"

# The agent's status update for a task: (framework id, task, state, reason, message, executor
# whose record it changes; None for a task still queued).
TaskUpdate = Callable[[str, mesos_pb2.TaskInfo | mesos_pb2.Task, TaskState, Reason, str,
                       Executor | None], None]


@dataclass(frozen=True)
class SupervisorConfig:
    work_dir: str
    registration_timeout: float
    reregistration_timeout: float
    shutdown_grace_period: float
    switch_user: bool

    @classmethod
    def of(cls, config: AgentConfig) -> SupervisorConfig:
        return cls(work_dir=config.work_dir,
                   registration_timeout=float(config.executor_registration_timeout),
                   reregistration_timeout=float(config.executor_reregistration_timeout),
                   shutdown_grace_period=float(config.executor_shutdown_grace_period),
                   switch_user=config.switch_user)


@dataclass(frozen=True)
class SupervisorCallbacks:
    """What the supervisor asks of the agent, one call each (as ``status_updates.py``)."""

    agent_id: Callable[[], str]  # known once registered, before any executor launches
    environment: Callable[[FrameworkRecord, Executor], dict[str, str]]
    task_update: TaskUpdate
    update_pending: Callable[[str, str], bool]  # (framework id, task id): unacknowledged?
    exited: Callable[[Executor, int], None]  # after its tasks were told: table, master


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
    info.name = command_executor_name(task.task_id.value, command)
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


def make_sandbox(directory: str, container_id: str) -> None:
    """The run's sandbox and the ``latest`` link beside it. Off the event loop: each new
    directory allocates an inode, and on a busy ext4 (sandboxes made and removed all day) that
    is a millisecond or more of kernel time a directory, three for a new executor; a batch of
    launches made them one after another on the loop, in front of everything else."""
    os.makedirs(directory, exist_ok=True)
    latest = os.path.join(os.path.dirname(directory), "latest")
    try:
        if os.path.islink(latest):
            os.unlink(latest)
        os.symlink(container_id, latest)
    except OSError:
        pass


def shutdown_grace(default: float, executor: Executor) -> float:
    """``ExecutorInfo.shutdown_grace_period`` if set, else ``default``
    (``--executor_shutdown_grace_period``)."""
    if executor.info.HasField("shutdown_grace_period"):
        return max(executor.info.shutdown_grace_period.nanoseconds, 0) / 1e9
    return float(default)


class ExecutorSupervisor:
    """Owns executors' processes: launch, watch, deadlines, shutdown, exit. The table (who
    exists) and the callbacks (tasks, updates, the master) are the agent's."""

    def __init__(self, config: SupervisorConfig, table: ExecutorTable,
                 containerizer: Containerizer, checkpointer: Checkpointer,
                 callbacks: SupervisorCallbacks) -> None:
        self.config = config
        self.table = table
        self.containerizer = containerizer
        self.checkpointer = checkpointer
        self.callbacks = callbacks
        # Runs whose executor ended while updates of its tasks are still unacknowledged: their
        # sentinel waits for the last acknowledgement (a crash before it must resend them).
        self.unfinished_runs: dict[str, tuple[FrameworkRecord, Executor, set[str]]] = {}
        # Sandboxes are made on threads of their own (see make_sandbox), not the default
        # executor's, where a long job (a Docker call) could hold a launch up.
        self._sandboxes: concurrent.futures.ThreadPoolExecutor | None = None
        # Executors adopted after a restart: their re-subscription deadline starts once the
        # agent serves (see serving), not at adoption. Between the two, the containerizer's own
        # recovery runs (a Docker listing: seconds on a loaded host) and no executor can reach
        # the agent yet, so a deadline started at adoption destroyed executors that were
        # retrying in time. Mesos likewise starts it when recovery is complete.
        self._adopted: list[Executor] | None = []  # None once serving

    # Launch --------------------------------------------------------------------------------
    def new_executor(self, framework: FrameworkRecord, info: mesos_pb2.ExecutorInfo
                     ) -> Executor:
        container_id = str(uuid.uuid4())
        directory = paths.sandbox(self.config.work_dir, self.callbacks.agent_id(), framework.id,
                                  info.executor_id.value, container_id)
        executor = Executor(framework.id, info, container_id, directory, kind=kind_of(info))
        self.table.add(executor)
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
                    self.callbacks.task_update(framework.id, launched, mesos_pb2.TASK_FAILED,
                                               Status.REASON_CONTAINER_LAUNCH_FAILED, str(exc),
                                               executor)
            self.terminated(executor, -1)

    async def _launch(self, framework: FrameworkRecord, executor: Executor) -> None:
        agent_id = self.callbacks.agent_id()
        if self._sandboxes is None:
            self._sandboxes = concurrent.futures.ThreadPoolExecutor(
                max_workers=SANDBOX_THREADS, thread_name_prefix="sandbox")
        await asyncio.get_running_loop().run_in_executor(
            self._sandboxes, make_sandbox, executor.directory, executor.container_id)

        def forked(process: Process) -> None:
            # Before the launch completes: a Docker executor has its task while the container
            # is still being created and started.
            if framework.info.checkpoint:
                self.checkpointer.run(agent_id, framework.info, executor.info,
                                      executor.container_id, process.pid, process.start_time,
                                      kind=executor.kind)

        process = await self.containerizer.launch(ContainerConfig(
            container_id=executor.container_id, agent_id=agent_id, framework_info=framework.info,
            executor_info=executor.info, tasks=tuple(executor.queued.values()),
            command_executor=executor.command_executor, directory=executor.directory,
            environment=self.callbacks.environment(framework, executor), forked=forked,
            user=task_user(self.config.switch_user, framework.info, executor),
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
        if executor.state != ExecutorState.REGISTERING:
            return
        if adopted and self._adopted is not None:
            self._adopted.append(executor)
            return
        self._start_deadline(executor, adopted=adopted)

    def serving(self) -> None:
        """The agent now answers executors: the adopted ones' deadlines to re-subscribe start
        (and those of any adopted later start at once)."""
        adopted, self._adopted = self._adopted or [], None
        for executor in adopted:
            if executor.state == ExecutorState.REGISTERING:
                self._start_deadline(executor, adopted=True)

    def _start_deadline(self, executor: Executor, *, adopted: bool) -> None:
        executor.timer = asyncio.get_running_loop().call_later(
            self._registration_deadline(adopted), self._registration_timeout, executor, adopted,
        )

    def _registration_deadline(self, adopted: bool) -> float:
        if adopted:
            return self.config.reregistration_timeout
        return self.config.registration_timeout

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
                self.containerizer.destroy(executor.container_id, executor.process, grace)
            )

    def shutdown(self, executor: Executor) -> None:
        if executor.state in (ExecutorState.TERMINATING, ExecutorState.TERMINATED):
            return
        executor.transition(ExecutorState.TERMINATING)
        if executor.stream is not None:
            executor.send(Event(type=Event.SHUTDOWN))
        # The executor gets the grace period to kill its tasks; the small extra covers our own
        # SIGTERM-to-SIGKILL escalation inside it.
        grace = shutdown_grace(self.config.shutdown_grace_period, executor)
        if executor.process is not None:
            asyncio.get_running_loop().call_later(
                grace + 1.0, lambda: self._destroy_if_alive(executor)
            )
            if executor.stream is None:
                self.destroy(executor, grace)

    def _destroy_if_alive(self, executor: Executor) -> None:
        if executor.process is not None and not executor.process.exited.done():
            self.destroy(executor, 0.0)

    # Recovery ------------------------------------------------------------------------------
    def adopt(self, found: RecoveredExecutor) -> None:
        """An executor recovery rebuilt: in the table, and watched if its process still runs."""
        executor = found.executor
        self.table.framework_for(found.framework)
        self.table.add(executor)
        if found.process is None:
            log.warning("executor %s of framework %s is gone; its tasks end", executor.id,
                        executor.framework_id)
            # Terminated from the event loop, as a live exit would be.
            asyncio.get_running_loop().call_soon(self.lost, executor)
            return
        # Watched as a launched executor is, with the re-registration timeout.
        self.watch(executor, found.process, adopted=True)
        log.info("recovered executor %s of framework %s (pid %d)", executor.id,
                 executor.framework_id, found.pid)

    # Exit ----------------------------------------------------------------------------------
    def lost(self, executor: Executor) -> None:
        """An executor found gone at recovery."""
        self.terminated(executor, -1, "terminated while the agent was down")

    def _fail_queued(self, executor: Executor, reason: Reason, message: str) -> None:
        for task in list(executor.queued.values()):
            self.callbacks.task_update(executor.framework_id, task, mesos_pb2.TASK_FAILED,
                                       reason, message, None)
        executor.queued.clear()

    def finish_run(self, framework_id: str, task_id: str) -> None:
        """An update of ``task_id`` was acknowledged: a run waiting for it may be done."""
        for container_id, (framework, executor, pending) in list(self.unfinished_runs.items()):
            if framework.id != framework_id or task_id not in pending:
                continue
            if not self.callbacks.update_pending(framework_id, task_id):
                pending.discard(task_id)
            if not pending:
                del self.unfinished_runs[container_id]
                self.checkpointer.run_done(self.callbacks.agent_id(), framework_id,
                                           executor.id, container_id)

    def report(self, register: internal_pb2.RegisterAgent) -> None:
        """Ended executors whose tasks' last updates are unacknowledged, for a registration:
        the master must not take those tasks for lost while the updates are on their way."""
        for framework, executor, pending in self.unfinished_runs.values():
            state = register.executors.add()
            state.framework_info.CopyFrom(framework.info)
            state.executor_info.CopyFrom(executor.info)
            state.tasks.extend(executor.launched[t] for t in pending if t in executor.launched)

    def terminated(self, executor: Executor, status: int, detail: str | None = None) -> None:
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
        limitation = self.containerizer.limitation(executor.container_id)
        update = self.callbacks.task_update
        for task in list(executor.launched.values()):
            if task.state in TERMINAL_STATES:
                continue
            if limitation is not None:
                update(executor.framework_id, task, mesos_pb2.TASK_FAILED,
                       Status.Reason.ValueType(limitation.reason), limitation.message, executor)
                continue
            killed = task.task_id.value in executor.killed
            state = mesos_pb2.TASK_KILLED if killed else mesos_pb2.TASK_FAILED
            update(executor.framework_id, task, state, Status.REASON_EXECUTOR_TERMINATED,
                   f"Executor {detail}", executor)
        framework = self.table.framework(executor.framework_id)
        if framework is not None and framework.info.checkpoint:
            pending = {t for t in executor.launched
                       if self.callbacks.update_pending(framework.id, t)}
            if pending:
                self.unfinished_runs[executor.container_id] = (framework, executor, pending)
            else:
                self.checkpointer.run_done(self.callbacks.agent_id(), framework.id, executor.id,
                                           executor.container_id)
        asyncio.get_running_loop().create_task(self.containerizer.cleanup(executor.container_id))
        self.callbacks.exited(executor, status)
