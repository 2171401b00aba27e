"""The agent's core: runs executors for the master's tasks and relays their status updates."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import uuid
from collections.abc import Callable

from agent_runtime.agent.checkpoint import Checkpointer, CheckpointWriter
from agent_runtime.agent.config import AgentConfig
from agent_runtime.agent.model import Executor, ExecutorState, FrameworkRecord
from agent_runtime.agent.recovery import checkpoint_stream
from agent_runtime.agent.status_updates import StatusUpdateManager
from agent_runtime.agent.supervisor import ExecutorSupervisor, executor_info_for, shutdown_grace
from agent_runtime.containerizer.containerizer import Containerizer
from agent_runtime.containerizer.mesos import COMMAND_EXECUTOR
from agent_runtime.errors import BadRequest
from agent_runtime.ids import id_error
from agent_runtime.proto import executor_pb2, internal_pb2, mesos_pb2
from agent_runtime.resources import Resources
from agent_runtime.task_states import TERMINAL_STATES

log = logging.getLogger(__name__)

Status = mesos_pb2.TaskStatus
Event = executor_pb2.Event
__all__ = ["COMMAND_EXECUTOR", "Agent"]
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Agent:
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
        self.frameworks: dict[str, FrameworkRecord] = {}
        self.completed_frameworks: list[FrameworkRecord] = []
        self.master_info: mesos_pb2.MasterInfo | None = None
        self.send_to_master: Callable[[internal_pb2.AgentMessage], None] = lambda m: None
        # Checkpoints are written off the event loop; what they record waits for them.
        self.checkpoint_writer = CheckpointWriter()
        self.checkpointer = Checkpointer(config.work_dir, writer=self.checkpoint_writer)
        self._launches: set[asyncio.Task[None]] = set()
        self.supervisor = ExecutorSupervisor(self)
        self.updates = StatusUpdateManager(
            self._forward_update, changed=lambda fid, tid: checkpoint_stream(self, fid, tid))
        self.endpoint = f"{config.advertise_ip or config.ip}:{info.port}"
        self._extra_env: dict[str, str] = {}
        if config.executor_environment_variables:
            try:
                loaded = json.loads(config.executor_environment_variables)
            except ValueError as exc:
                raise BadRequest(f"--executor_environment_variables: {exc}") from exc
            if not isinstance(loaded, dict) or not all(
                isinstance(v, str) for v in loaded.values()
            ):
                raise BadRequest("--executor_environment_variables must map names to strings")
            self._extra_env = loaded

    @property
    def id(self) -> str:
        return str(self.info.id.value)

    @property
    def pid(self) -> str:
        return f"slave(1)@{self.endpoint}"

    # Messages from the master ----------------------------------------------------------------
    def handle(self, message: internal_pb2.MasterMessage) -> None:
        kind = message.WhichOneof("kind")
        if kind == "run_task":
            launch = asyncio.get_running_loop().create_task(
                self.run_task(message.run_task.framework_info, message.run_task.task)
            )
            self._launches.add(launch)  # held until done: the loop keeps only weak references
            launch.add_done_callback(self._launches.discard)
        elif kind == "kill_task":
            self.kill_task(message.kill_task)
        elif kind == "acknowledge":
            ack = message.acknowledge
            self.acknowledge(ack.framework_id.value, ack.task_id.value, ack.uuid)
        elif kind == "shutdown_framework":
            self.shutdown_framework(message.shutdown_framework.framework_id.value)
        elif kind == "shutdown_executor":
            shutdown = message.shutdown_executor
            executor = self._executor(shutdown.framework_id.value, shutdown.executor_id.value)
            if executor is not None:
                self.supervisor.shutdown(executor)
        elif kind == "framework_message":
            self.framework_message(message.framework_message)
        elif kind == "ping":
            self.send_to_master(internal_pb2.AgentMessage(pong=message.ping))

    def _executor(self, framework_id: str, executor_id: str) -> Executor | None:
        framework = self.frameworks.get(framework_id)
        return framework.executors.get(executor_id) if framework else None

    async def run_task(self, framework_info: mesos_pb2.FrameworkInfo,
                       task: mesos_pb2.TaskInfo) -> None:
        framework_id = framework_info.id.value
        if log.isEnabledFor(logging.DEBUG):  # bench/container_launch.py reads these two lines
            log.debug("task %s: run at %.6f", task.task_id.value, time.time())
        problem = id_error(framework_id)
        if problem is not None:
            # Our master never sends one; with no valid framework to tell, dropping is all
            # that is left (an update would be keyed by the very ID we refuse).
            log.warning("dropping a task of an invalid framework ID: %s", problem)
            return
        executor_info = executor_info_for(framework_id, task)
        # Both name directories (the sandbox, the task's checkpoints): never let either leave
        # the work_dir. The master checks them too; this agent does not rely on it.
        for what, value in (("Task ID", task.task_id.value),
                            ("Executor ID", executor_info.executor_id.value)):
            problem = id_error(value)
            if problem is not None:
                self.agent_update(framework_id, task, mesos_pb2.TASK_ERROR,
                                  Status.REASON_TASK_INVALID, f"{what} is invalid: {problem}")
                return
        executor_id = executor_info.executor_id.value
        framework = self.frameworks.get(framework_id)
        if framework is None:
            framework = self.frameworks[framework_id] = FrameworkRecord(framework_info)
        else:
            framework.info.CopyFrom(framework_info)
        executor = framework.executors.get(executor_id)
        if executor is not None and executor.state in (
            ExecutorState.TERMINATING, ExecutorState.TERMINATED
        ):
            self.agent_update(framework_id, task, mesos_pb2.TASK_DROPPED,
                              Status.REASON_EXECUTOR_TERMINATED, "Executor is terminating")
            return
        if executor is None:
            executor = self.supervisor.new_executor(framework, executor_info)
            executor.queued[task.task_id.value] = task
            await self.supervisor.launch(framework, executor)
            return
        if executor.state == ExecutorState.RUNNING and executor.stream is not None:
            self._send_launch(executor, task)
        else:
            executor.queued[task.task_id.value] = task

    def executor_env(self, framework: FrameworkRecord, executor: Executor) -> dict[str, str]:
        env = dict(self._extra_env)
        checkpoint = framework.info.checkpoint
        env.update(
            {
                "MESOS_FRAMEWORK_ID": framework.id,
                "MESOS_EXECUTOR_ID": executor.id,
                "MESOS_DIRECTORY": executor.directory,
                "MESOS_SANDBOX": executor.directory,
                "MESOS_AGENT_ENDPOINT": self.endpoint,
                "MESOS_SLAVE_ID": self.id,
                "MESOS_SLAVE_PID": self.pid,
                "MESOS_CHECKPOINT": "1" if checkpoint else "0",
                "MESOS_HTTP_COMMAND_EXECUTOR": "1" if self.config.http_command_executor else "0",
                "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD":
                    f"{shutdown_grace(self.config, executor):g}secs",
                "MESOS_CONTAINER_ID": executor.container_id,
                "LIBPROCESS_PORT": "0",
                "LIBPROCESS_IP": self.config.advertise_ip or self.config.ip,
            }
        )
        if checkpoint:
            env["MESOS_RECOVERY_TIMEOUT"] = f"{self.config.recovery_timeout:g}secs"
            env["MESOS_SUBSCRIPTION_BACKOFF_MAX"] = (
                f"{self.config.executor_reregistration_timeout:g}secs"
            )
        roles = {r.allocation_info.role for r in executor.info.resources
                 if r.HasField("allocation_info")}
        for task in executor.queued.values():
            roles.update(r.allocation_info.role for r in task.resources)
        if len(roles) == 1:
            env["MESOS_ALLOCATION_ROLE"] = roles.pop()
        if not executor.command_executor:
            for variable in executor.info.command.environment.variables:
                env[variable.name] = variable.value
        env.setdefault("PATH", os.environ.get("PATH", DEFAULT_PATH))
        return env

    # Executor API ------------------------------------------------------------------------
    def executor_subscribed(self, executor: Executor, subscribe: executor_pb2.Call.Subscribe,
                            stream: object) -> None:
        from agent_runtime.streams import EventStream

        assert isinstance(stream, EventStream)
        for update in subscribe.unacknowledged_updates:  # before anything changes
            validate_update(executor, update.status)
        if executor.stream is not None and executor.stream is not stream:
            executor.stream.close()
        executor.stream = stream
        if executor.state == ExecutorState.REGISTERING:
            executor.transition(ExecutorState.RUNNING)
        if executor.timer is not None:
            executor.timer.cancel()
            executor.timer = None
        framework = self.frameworks[executor.framework_id]
        event = Event(type=Event.SUBSCRIBED)
        event.subscribed.executor_info.CopyFrom(executor.info)
        event.subscribed.framework_info.CopyFrom(framework.info)
        event.subscribed.agent_info.CopyFrom(self.info)
        event.subscribed.container_id.value = executor.container_id
        stream.send(event)
        for update in subscribe.unacknowledged_updates:
            # As if sent again with UPDATE (duplicates of what we have are dropped by uuid).
            status = update.status
            self._complete(executor, status)
            if self.updates.update(executor.framework_id, status):
                self._record(executor, status)
        queued = list(executor.queued.values())
        executor.queued.clear()
        for task in queued:
            self._send_launch(executor, task)
        for task_id in executor.killed:  # kills that came while a recovered executor was away
            launched = executor.launched.get(task_id)
            if launched is not None and launched.state not in TERMINAL_STATES:
                kill = Event(type=Event.KILL)
                kill.kill.task_id.value = task_id
                self.send_event(executor, kill)

    def _send_launch(self, executor: Executor, task: mesos_pb2.TaskInfo) -> None:
        record = mesos_pb2.Task(name=task.name, state=mesos_pb2.TASK_STAGING)
        record.task_id.CopyFrom(task.task_id)
        record.framework_id.value = executor.framework_id
        record.executor_id.value = executor.id
        record.agent_id.value = self.id
        record.resources.extend(task.resources)
        framework = self.frameworks.get(executor.framework_id)
        if framework is not None:
            record.user = framework.info.user
        executor.launched[task.task_id.value] = record
        checkpointed = None
        if framework is not None and framework.info.checkpoint:
            # As Mesos: the task is on disk before its executor has it.
            self.checkpointer.task(self.id, framework.id, executor.id, executor.container_id,
                                   record)
            checkpointed = self.checkpoint_writer.durable()
        event = Event(type=Event.LAUNCH)
        event.launch.task.CopyFrom(task)
        self.send_event(executor, event, after=checkpointed)

    def send_event(self, executor: Executor, event: executor_pb2.Event,
                   after: asyncio.Future[None] | None = None) -> None:
        """Send ``event`` to the executor once ``after`` (a checkpoint) is on disk, and after
        every event held back before it: events reach an executor in the order sent."""
        if after is not None and not after.done():
            executor.gate = after  # the latest checkpoint asked: done last
            after.add_done_callback(lambda done: self._release(executor, done))
        if executor.gate is not None:
            executor.held.append(event)
        elif executor.stream is not None:
            executor.stream.send(event)

    def _release(self, executor: Executor, done: asyncio.Future[None]) -> None:
        if executor.gate is not done:
            return  # a later checkpoint holds the events
        # Sent even if the checkpoint failed (the writer logged it): held for good is worse.
        executor.gate = None
        held, executor.held = executor.held, []
        for event in held:
            if executor.stream is not None:
                executor.stream.send(event)

    def executor_update(self, executor: Executor, status: mesos_pb2.TaskStatus
                        ) -> asyncio.Future[None] | None:
        """An UPDATE call; returns what to await before answering it (None: nothing), so an
        update the executor is told was taken is on disk (checkpointing frameworks)."""
        validate_update(executor, status)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("task %s: %s from its executor at %.6f", status.task_id.value,
                      mesos_pb2.TaskState.Name(status.state), time.time())
        known = executor.launched.get(status.task_id.value)
        if known is not None and known.state in TERMINAL_STATES:
            # As Mesos's status update stream: nothing follows a terminal update (the agent may
            # have sent one itself, e.g. when the container failed to start).
            log.info("dropping %s for terminal task %s", mesos_pb2.TaskState.Name(status.state),
                     status.task_id.value)
            return None
        self._complete(executor, status)
        self._record(executor, status)
        self.updates.update(executor.framework_id, status)
        framework = self.frameworks.get(executor.framework_id)
        if framework is None or not framework.info.checkpoint:
            return None
        return self.checkpoint_writer.durable()

    def _complete(self, executor: Executor, status: mesos_pb2.TaskStatus) -> None:
        """Fill in what the agent adds to an executor's update."""
        status.executor_id.value = executor.id
        status.agent_id.value = self.id
        if not status.HasField("timestamp"):
            status.timestamp = self.clock()

    def _record(self, executor: Executor, status: mesos_pb2.TaskStatus) -> None:
        task = executor.launched.get(status.task_id.value)
        if task is None:
            return
        task.state = status.state
        stored = task.statuses.add()
        stored.CopyFrom(status)
        stored.ClearField("data")

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
        framework = self.frameworks.get(framework_id)
        if framework is None:
            return
        for executor in list(framework.executors.values()):
            task = executor.launched.get(task_id)
            if task is None:
                continue
            if status.source == Status.SOURCE_EXECUTOR and executor.stream is not None:
                event = Event(type=Event.ACKNOWLEDGED)
                event.acknowledged.task_id.value = task_id
                event.acknowledged.uuid = uuid_bytes
                # Once the acknowledgement is on disk: no resend after a crash.
                checkpointed = self.checkpoint_writer.durable() \
                    if framework.info.checkpoint else None
                self.send_event(executor, event, after=checkpointed)
            if status.state in TERMINAL_STATES:
                executor.completed.append(executor.launched.pop(task_id))
            break

    def agent_update(self, framework_id: str, task: mesos_pb2.TaskInfo | mesos_pb2.Task,
                     state: int, reason: int, message: str,
                     executor: Executor | None = None) -> None:
        status = mesos_pb2.TaskStatus(state=state, source=Status.SOURCE_AGENT,  # type: ignore[arg-type]
                                      reason=reason, message=message,  # type: ignore[arg-type]
                                      timestamp=self.clock(), uuid=uuid.uuid4().bytes)
        status.task_id.CopyFrom(task.task_id)
        status.agent_id.value = self.id
        if executor is not None:
            status.executor_id.value = executor.id
            self._record(executor, status)
        self.updates.update(framework_id, status)

    # Kill and shutdown -------------------------------------------------------------------
    def kill_task(self, kill: internal_pb2.KillTask) -> None:
        framework_id = kill.framework_id.value
        task_id = kill.task_id.value
        framework = self.frameworks.get(framework_id)
        if framework is None:
            return
        for executor in framework.executors.values():
            queued = executor.queued.pop(task_id, None)
            if queued is not None:
                self.agent_update(framework_id, queued, mesos_pb2.TASK_KILLED,
                                  Status.REASON_TASK_KILLED_DURING_LAUNCH,
                                  "Killed before delivery to the executor")
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
                self.send_event(executor, event)
            elif executor.state != ExecutorState.REGISTERING:
                self.supervisor.shutdown(executor)
            # else: an executor recovered after a restart, not yet back: told when it is.
            return
        log.info("kill of unknown task %s of framework %s", task_id, framework_id)

    def shutdown_framework(self, framework_id: str) -> None:
        framework = self.frameworks.get(framework_id)
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
        executor = self._executor(message.framework_id.value, message.executor_id.value)
        if executor is None or executor.stream is None:
            return
        event = Event(type=Event.MESSAGE)
        event.message.data = message.data
        self.send_event(executor, event)

    # Registration --------------------------------------------------------------------------
    def registration(self) -> internal_pb2.RegisterAgent:
        register = internal_pb2.RegisterAgent(version="1.11.0", pid=self.pid)
        register.agent_info.CopyFrom(self.info)
        for capability in (mesos_pb2.AgentInfo.Capability.MULTI_ROLE,
                           mesos_pb2.AgentInfo.Capability.HIERARCHICAL_ROLE,
                           mesos_pb2.AgentInfo.Capability.RESERVATION_REFINEMENT):
            register.capabilities.add(type=capability)
        for framework in self.frameworks.values():
            for executor in framework.executors.values():
                state = register.executors.add()
                state.framework_info.CopyFrom(framework.info)
                state.executor_info.CopyFrom(executor.info)
                state.tasks.extend(executor.launched.values())
                for queued in executor.queued.values():  # not delivered yet: still STAGING
                    task = state.tasks.add(name=queued.name, state=mesos_pb2.TASK_STAGING)
                    task.task_id.CopyFrom(queued.task_id)
                    task.framework_id.value = framework.id
                    task.executor_id.value = executor.id
                    task.agent_id.value = self.id
                    task.resources.extend(queued.resources)
        # Ended executors whose tasks' last updates are unacknowledged: the master must not take
        # those tasks for lost while the updates are still on their way.
        for framework, executor, pending in self.supervisor.unfinished_runs.values():
            state = register.executors.add()
            state.framework_info.CopyFrom(framework.info)
            state.executor_info.CopyFrom(executor.info)
            state.tasks.extend(executor.launched[t] for t in pending if t in executor.launched)
        return register

    def registered(self, agent_id: str, master_info: mesos_pb2.MasterInfo) -> None:
        first = not self.info.HasField("id")
        self.info.id.value = agent_id
        self.master_info = master_info
        if first:
            self.checkpointer.agent(self.info)
        self.updates.resend_all()


def validate_update(executor: Executor, status: mesos_pb2.TaskStatus) -> None:
    """An executor's status update, by UPDATE or re-sent in SUBSCRIBE: BadRequest if bad."""
    if not status.task_id.value:
        raise BadRequest("Expecting 'status.task_id' to be present")
    if not status.HasField("state"):
        raise BadRequest("Expecting 'status.state' to be present")
    if len(status.uuid) != 16:
        raise BadRequest("'status.uuid' must be a 16-byte UUID generated by the executor")
    if status.state == mesos_pb2.TASK_STAGING:
        raise BadRequest("Received TASK_STAGING from executor; executors may not send it")
    if status.source != Status.SOURCE_EXECUTOR:
        raise BadRequest("Received a status update whose source is not SOURCE_EXECUTOR")
    if status.HasField("executor_id") and status.executor_id.value != executor.id:
        raise BadRequest("'status.executor_id' does not match the subscribed executor")
