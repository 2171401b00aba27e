"""The agent's core: runs executors for the master's tasks and relays their status updates.

Who runs is the executor table's; processes are the supervisor's, which calls back here for
task updates and exits. The master's messages reach one handler each, by kind."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Coroutine

from agent_runtime.agent import task_groups
from agent_runtime.agent.checkpoint import Checkpointer, CheckpointWriter
from agent_runtime.agent.config import AgentConfig
from agent_runtime.agent.environment import AgentIdentity, ExecutorEnvironment
from agent_runtime.agent.executor_table import ExecutorTable
from agent_runtime.agent.executor_updates import (
    after_terminal,
    complete,
    record,
    validate_update,
)
from agent_runtime.agent.model import Executor, ExecutorState, FrameworkRecord
from agent_runtime.agent.recovery import RecoveredExecutor
from agent_runtime.agent.status_updates import StatusUpdateManager
from agent_runtime.agent.supervisor import (
    ExecutorSupervisor,
    SupervisorCallbacks,
    SupervisorConfig,
    executor_info_for,
)
from agent_runtime.agent.task_groups import drain, queue, send_launch, take_queued
from agent_runtime.containerizer.containerizer import Containerizer
from agent_runtime.containerizer.mesos import COMMAND_EXECUTOR
from agent_runtime.ids import id_error
from agent_runtime.proto import executor_pb2, internal_pb2, mesos_pb2
from agent_runtime.resources import Resources
from agent_runtime.streams import EventStream
from agent_runtime.task_states import TERMINAL_STATES, Reason, TaskState

log = logging.getLogger(__name__)

Status = mesos_pb2.TaskStatus
Event = executor_pb2.Event
MasterMessage = internal_pb2.MasterMessage
__all__ = ["COMMAND_EXECUTOR", "Agent"]


class Agent:
    """Tasks, updates and the master's messages. Who runs is the executor table's; processes
    are the supervisor's, which calls back here (task updates, events, exits)."""

    def __init__(
        self,
        config: AgentConfig,
        info: mesos_pb2.AgentInfo,
        resources: Resources,
        containerizer: Containerizer,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.info = info
        self.resources = resources
        self.containerizer = containerizer
        self.clock = clock
        self.start_time = clock()
        self.table = ExecutorTable()
        self.master_info: mesos_pb2.MasterInfo | None = None
        self.send_to_master: Callable[[internal_pb2.AgentMessage], None] = lambda m: None
        self.environment = ExecutorEnvironment.of(config)  # BadRequest: a bad flag
        # Checkpoints are written off the event loop; what they record waits for them.
        self.checkpoint_writer = CheckpointWriter()
        self.checkpointer = Checkpointer(config.work_dir, writer=self.checkpoint_writer)
        self._launches: set[asyncio.Task[None]] = set()
        self.updates = StatusUpdateManager(
            self._forward_update, changed=self._checkpoint_stream,
            retry_min=float(config.status_update_retry_interval_min))
        self.supervisor = ExecutorSupervisor(
            SupervisorConfig.of(config), self.table, containerizer, self.checkpointer,
            SupervisorCallbacks(
                agent_id=lambda: self.id, environment=self._executor_env,
                task_update=self.agent_update,
                update_pending=lambda fid, tid: bool(self.updates.pending(fid, tid)),
                exited=self._executor_exited))
        self.endpoint = f"{config.advertise_ip or config.ip}:{info.port}"
        self._handlers: dict[str, Callable[[MasterMessage], None]] = {
            "run_task": self._on_run_task,
            "run_task_group": self._on_run_task_group,
            "kill_task": lambda m: self.kill_task(m.kill_task),
            "acknowledge": lambda m: self.acknowledge(
                m.acknowledge.framework_id.value, m.acknowledge.task_id.value, m.acknowledge.uuid),
            "shutdown_framework":
                lambda m: self.shutdown_framework(m.shutdown_framework.framework_id.value),
            "shutdown_executor": self._on_shutdown_executor,
            "framework_message": lambda m: self.framework_message(m.framework_message),
            "ping": lambda m: self.send_to_master(internal_pb2.AgentMessage(pong=m.ping)),
        }

    @property
    def id(self) -> str:
        return str(self.info.id.value)

    @property
    def pid(self) -> str:
        return f"slave(1)@{self.endpoint}"

    # Messages from the master ----------------------------------------------------------------
    def handle(self, message: MasterMessage) -> None:
        handler = self._handlers.get(message.WhichOneof("kind") or "")
        if handler is not None:
            handler(message)

    def _on_run_task(self, message: MasterMessage) -> None:
        self._start(self.run_task(message.run_task.framework_info, message.run_task.task))

    def _on_run_task_group(self, message: MasterMessage) -> None:
        run = message.run_task_group
        self._start(self._run(run.framework_info, run.executor_info,
                              list(run.task_group.tasks), group=True))

    def _start(self, coroutine: Coroutine[None, None, None]) -> None:
        launch = asyncio.get_running_loop().create_task(coroutine)
        self._launches.add(launch)  # held until done: the loop keeps only weak references
        launch.add_done_callback(self._launches.discard)

    def _on_shutdown_executor(self, message: MasterMessage) -> None:
        shutdown = message.shutdown_executor
        executor = self.table.executor(shutdown.framework_id.value, shutdown.executor_id.value)
        if executor is not None:
            self.supervisor.shutdown(executor)

    async def run_task(self, framework_info: mesos_pb2.FrameworkInfo,
                       task: mesos_pb2.TaskInfo) -> None:
        await self._run(framework_info, executor_info_for(framework_info.id.value, task), [task])

    async def _run(self, framework_info: mesos_pb2.FrameworkInfo,
                   executor_info: mesos_pb2.ExecutorInfo, tasks: list[mesos_pb2.TaskInfo],
                   group: bool = False) -> None:
        framework_id = framework_info.id.value
        if log.isEnabledFor(logging.DEBUG):  # bench/container_launch.py reads these two lines
            log.debug("task %s: run at %.6f", tasks[0].task_id.value, time.time())
        problem = id_error(framework_id)
        if problem is not None:
            # Our master never sends one; with no valid framework to tell, dropping is all
            # that is left (an update would be keyed by the very ID we refuse).
            log.warning("dropping a task of an invalid framework ID: %s", problem)
            return
        problem = task_groups.ids_error(tasks, executor_info)  # they name directories
        if problem is not None:
            for task in tasks:
                self.agent_update(framework_id, task, mesos_pb2.TASK_ERROR,
                                  Status.REASON_TASK_INVALID, problem)
            return
        executor_id = executor_info.executor_id.value
        known = self.table.framework(framework_id)
        framework = self.table.framework_for(framework_info)
        if known is not None:
            framework.info.CopyFrom(framework_info)
        executor = framework.executors.get(executor_id)
        if executor is not None and executor.state in (
            ExecutorState.TERMINATING, ExecutorState.TERMINATED
        ):
            for task in tasks:
                self.agent_update(framework_id, task, mesos_pb2.TASK_DROPPED,
                                  Status.REASON_EXECUTOR_TERMINATED, "Executor is terminating")
            return
        if executor is None:
            executor = self.supervisor.new_executor(framework, executor_info)
            queue(executor, tasks, group)
            await self.supervisor.launch(framework, executor)
        elif group and (problem := await task_groups.prepare(self.containerizer, executor, tasks)):
            for task in tasks:
                self.agent_update(framework_id, task, mesos_pb2.TASK_FAILED,
                                  Status.REASON_CONTAINER_LAUNCH_FAILED, problem)
        elif executor.state == ExecutorState.RUNNING and executor.stream is not None:
            send_launch(executor, tasks, group, self.id, framework, self.checkpointer,
                        self.containerizer)
        else:
            queue(executor, tasks, group)

    def _executor_env(self, framework: FrameworkRecord, executor: Executor) -> dict[str, str]:
        return self.environment.build(AgentIdentity(self.id, self.pid, self.endpoint), framework,
                                      executor)

    # Executor API ------------------------------------------------------------------------
    def executor_subscribed(self, executor: Executor, subscribe: executor_pb2.Call.Subscribe,
                            stream: EventStream) -> None:
        for update in subscribe.unacknowledged_updates:  # before anything changes
            validate_update(executor, update.status)
        framework = self.table.framework(executor.framework_id)
        assert framework is not None  # the executor API found the executor in the table
        if executor.stream is not None and executor.stream is not stream:
            executor.stream.close()
        executor.stream = stream
        if executor.state == ExecutorState.REGISTERING:
            executor.transition(ExecutorState.RUNNING)
        if executor.timer is not None:
            executor.timer.cancel()
            executor.timer = None
        event = Event(type=Event.SUBSCRIBED)
        event.subscribed.executor_info.CopyFrom(executor.info)
        event.subscribed.framework_info.CopyFrom(framework.info)
        event.subscribed.agent_info.CopyFrom(self.info)
        event.subscribed.container_id.value = executor.container_id
        stream.send(event)
        for update in subscribe.unacknowledged_updates:
            # As if sent again with UPDATE (duplicates of what we have are dropped by uuid).
            status = update.status
            if after_terminal(executor, status):
                continue
            complete(executor, status, self.id, self.clock())
            if self.updates.update(executor.framework_id, status):
                record(executor, status)
        for tasks, group in list(drain(executor)):
            send_launch(executor, tasks, group, self.id, framework, self.checkpointer,
                        self.containerizer)
        for task_id in executor.killed:  # kills that came while a recovered executor was away
            launched = executor.launched.get(task_id)
            if launched is not None and launched.state not in TERMINAL_STATES:
                kill = Event(type=Event.KILL)
                kill.kill.task_id.value = task_id
                executor.send(kill)

    def executor_update(self, executor: Executor, status: mesos_pb2.TaskStatus
                        ) -> asyncio.Future[None] | None:
        """An UPDATE call; returns what to await before answering it (None: nothing), so an
        update the executor is told was taken is on disk (checkpointing frameworks)."""
        validate_update(executor, status)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("task %s: %s from its executor at %.6f", status.task_id.value,
                      mesos_pb2.TaskState.Name(status.state), time.time())
        if after_terminal(executor, status):
            return None
        if not self.updates.duplicate(executor.framework_id, status):  # else a retried UPDATE
            complete(executor, status, self.id, self.clock())
            record(executor, status)
            self.updates.update(executor.framework_id, status)
        if not self.table.checkpointing(executor.framework_id):
            return None
        return self.checkpoint_writer.durable()

    def executor_message(self, executor: Executor, data: bytes) -> None:
        message = internal_pb2.AgentMessage()
        message.executor_message.framework_id.value = executor.framework_id
        message.executor_message.executor_id.value = executor.id
        message.executor_message.data = data
        self.send_to_master(message)

    def executor_disconnected(self, executor: Executor, stream: object) -> None:
        if executor.stream is stream:
            executor.stream = None

    # Status updates ----------------------------------------------------------------------
    def _forward_update(self, update: internal_pb2.StatusUpdate) -> None:
        message = internal_pb2.AgentMessage()
        message.status_update.CopyFrom(update)
        self.send_to_master(message)

    def acknowledge(self, framework_id: str, task_id: str, uuid_bytes: bytes) -> None:
        status = self.updates.acknowledge(framework_id, task_id, uuid_bytes)
        if status is None:
            return
        self.supervisor.finish_run(framework_id, task_id)
        executor = self.table.holding(framework_id, task_id)
        if executor is None:
            return
        if status.source == Status.SOURCE_EXECUTOR and executor.stream is not None:
            event = Event(type=Event.ACKNOWLEDGED)
            event.acknowledged.task_id.value = task_id
            event.acknowledged.uuid = uuid_bytes
            # Once the acknowledgement is on disk: no resend after a crash.
            checkpointed = self.checkpoint_writer.durable() \
                if self.table.checkpointing(framework_id) else None
            executor.send(event, after=checkpointed)
        if status.state in TERMINAL_STATES:
            executor.completed.append(executor.launched.pop(task_id))

    def agent_update(self, framework_id: str, task: mesos_pb2.TaskInfo | mesos_pb2.Task,
                     state: TaskState, reason: Reason, message: str,
                     executor: Executor | None = None) -> None:
        status = mesos_pb2.TaskStatus(state=state, source=Status.SOURCE_AGENT, reason=reason,
                                      message=message, timestamp=self.clock(),
                                      uuid=uuid.uuid4().bytes)
        status.task_id.CopyFrom(task.task_id)
        status.agent_id.value = self.id
        if executor is not None:
            status.executor_id.value = executor.id
            record(executor, status)
        self.updates.update(framework_id, status)

    def _checkpoint_stream(self, framework_id: str, task_id: str
                           ) -> asyncio.Future[None] | None:
        """The status update manager's ``changed``: write a task's update stream (and its latest
        state) for a checkpointing framework; returns what to wait for before telling anyone."""
        if not self.table.checkpointing(framework_id):
            return None
        executor = self.table.holding(framework_id, task_id)
        if executor is not None:
            self.checkpointer.task(self.id, framework_id, executor.id, executor.container_id,
                                   executor.launched[task_id])
            self.checkpointer.updates(self.id, framework_id, executor.id, executor.container_id,
                                      task_id, self.updates.snapshot(framework_id, task_id))
        return self.checkpoint_writer.durable()

    # Kill and shutdown -------------------------------------------------------------------
    def kill_task(self, kill: internal_pb2.KillTask) -> None:
        framework_id = kill.framework_id.value
        task_id = kill.task_id.value
        if self.table.framework(framework_id) is None:
            return
        for executor in self.table.executors_of(framework_id):
            queued = take_queued(executor, task_id)  # a group's: the whole group
            for info in queued:
                self.agent_update(framework_id, info, mesos_pb2.TASK_KILLED,
                                  Status.REASON_TASK_KILLED_DURING_LAUNCH,
                                  "Killed before delivery to the executor")
            if queued:
                if not executor.queued and not executor.launched:
                    self.supervisor.shutdown(executor)
                return
            task = executor.launched.get(task_id)
            if task is None:
                continue
            if task.state in TERMINAL_STATES:
                return
            executor.killed.add(task_id)
            if executor.stream is not None:
                event = Event(type=Event.KILL)
                event.kill.task_id.value = task_id
                if kill.HasField("kill_policy"):
                    event.kill.kill_policy.CopyFrom(kill.kill_policy)
                executor.send(event)
            elif executor.state != ExecutorState.REGISTERING:
                self.supervisor.shutdown(executor)
            # else: an executor recovered after a restart, not yet back: told when it is.
            return
        log.info("kill of unknown task %s of framework %s", task_id, framework_id)

    def shutdown_framework(self, framework_id: str) -> None:
        framework = self.table.framework(framework_id)
        if framework is None:
            return
        framework.removed = True
        for executor in list(framework.executors.values()):
            executor.killed.update(executor.launched)
            for task in list(executor.queued.values()):
                self.agent_update(framework_id, task, mesos_pb2.TASK_KILLED,
                                  Status.REASON_FRAMEWORK_REMOVED, "Framework removed")
            executor.queued.clear()
            self.supervisor.shutdown(executor)

    def framework_message(self, message: internal_pb2.FrameworkToExecutor) -> None:
        executor = self.table.executor(message.framework_id.value, message.executor_id.value)
        if executor is None or executor.stream is None:
            return
        event = Event(type=Event.MESSAGE)
        event.message.data = message.data
        executor.send(event)

    # Executor exits and recovery -------------------------------------------------------------
    def _executor_exited(self, executor: Executor, status: int) -> None:
        """The supervisor's ``exited``: its tasks were told; out of the table, tell the master."""
        ended = self.table.remove(executor)
        if ended is not None and ended.removed:  # the master forgot it: nobody will acknowledge
            self.updates.forget_framework(ended.id)
        exited = internal_pb2.AgentMessage()
        exited.executor_exited.framework_id.value = executor.framework_id
        exited.executor_exited.executor_id.value = executor.id
        exited.executor_exited.status = status
        self.send_to_master(exited)

    def adopt(self, recovered: list[RecoveredExecutor]) -> list[str]:
        """Take in what recovery found; returns the container ids still worth keeping."""
        for found in recovered:
            for task_id, stream in found.streams.items():
                self.updates.restore(found.executor.framework_id, task_id, stream)
            self.supervisor.adopt(found)
        return [f.executor.container_id for f in recovered if f.process is not None]
    # Registration --------------------------------------------------------------------------
    def registration(self) -> internal_pb2.RegisterAgent:
        register = internal_pb2.RegisterAgent(version="1.11.0", pid=self.pid)
        register.agent_info.CopyFrom(self.info)
        for capability in (mesos_pb2.AgentInfo.Capability.MULTI_ROLE,
                           mesos_pb2.AgentInfo.Capability.HIERARCHICAL_ROLE,
                           mesos_pb2.AgentInfo.Capability.RESERVATION_REFINEMENT):
            register.capabilities.add(type=capability)
        self.table.report(register, self.id)
        self.supervisor.report(register)
        return register

    def registered(self, agent_id: str, master_info: mesos_pb2.MasterInfo) -> None:
        first = not self.info.HasField("id")
        self.info.id.value = agent_id
        self.master_info = master_info
        if first:
            self.checkpointer.agent(self.info)
        self.updates.resend_all()
