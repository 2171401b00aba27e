"""Tasks in the master: ACCEPT/DECLINE, launching, status updates, kills and reconciliation."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from agent_runtime.errors import BadRequest, RuntimeErrorBase
from agent_runtime.ids import id_error
from agent_runtime.master.model import TERMINAL_STATES, Agent, Executor, Framework, Offer, Task
from agent_runtime.proto import internal_pb2, mesos_pb2, scheduler_pb2
from agent_runtime.resources import Resources

if TYPE_CHECKING:
    from agent_runtime.master.master import Master

log = logging.getLogger(__name__)
Operation = mesos_pb2.Offer.Operation

Status = mesos_pb2.TaskStatus
DEFAULT_REFUSE_SECONDS = 5.0
ExecutorKey = tuple[str, str, str]  # (agent id, framework id, executor id)


def generated_for_command_task(info: mesos_pb2.ExecutorInfo) -> bool:
    """Whether an executor an agent reports is one it made for a command task. Mesos's agent
    leaves those out of its re-registration; ours reports them (their tasks come with them), as
    DEFAULT executors named "Command Executor (Task: ...)" (see ``Agent._executor_info``)."""
    return (info.type == mesos_pb2.ExecutorInfo.DEFAULT
            and info.name.startswith("Command Executor"))


def executor_as_launched(executor: mesos_pb2.ExecutorInfo, framework_id: str,
                         role: str) -> mesos_pb2.ExecutorInfo:
    """The ExecutorInfo as the master passes it on: framework id and allocation role set."""
    info = mesos_pb2.ExecutorInfo()
    info.CopyFrom(executor)
    info.framework_id.value = framework_id
    for resource in info.resources:
        resource.allocation_info.role = role
    return info


def compatible_executors(a: mesos_pb2.ExecutorInfo, b: mesos_pb2.ExecutorInfo) -> bool:
    """Mesos's ``ExecutorInfo`` equality (``validateCompatibleExecutorInfo``): every field the
    same, resources compared as a whole rather than in order."""
    plain_a, plain_b = mesos_pb2.ExecutorInfo(), mesos_pb2.ExecutorInfo()
    plain_a.CopyFrom(a)
    plain_b.CopyFrom(b)
    plain_a.ClearField("resources")
    plain_b.ClearField("resources")
    if plain_a != plain_b:
        return False
    # Resources compare without their allocation role; Mesos's Resource equality has it.
    if (sorted(r.allocation_info.role for r in a.resources)
            != sorted(r.allocation_info.role for r in b.resources)):
        return False
    try:
        return Resources.from_proto(a.resources) == Resources.from_proto(b.resources)
    except BadRequest:
        return False


class TaskLauncher:
    """Owns the task side of the master; :class:`Master` owns frameworks, agents and offers."""

    def __init__(self, master: Master) -> None:
        self.master = master
        # The custom executors the master knows, by (agent id, framework id, executor id).
        self._executors: dict[ExecutorKey, Executor] = {}

    # ACCEPT / DECLINE ------------------------------------------------------------------------
    def accept(self, framework: Framework, accept: scheduler_pb2.Call.Accept) -> None:
        master = self.master
        offer_ids = [o.value for o in accept.offer_ids]
        refuse = accept.filters.refuse_seconds if accept.HasField("filters") else None
        error = self._validate_offers(framework, offer_ids)
        offers = [master.offers[o] for o in offer_ids if o in master.offers
                  and master.offers[o].framework_id == framework.id]
        if error is not None:
            for offer in offers:
                master.remove_offer(offer.proto.id.value)
                master.allocator.recover(
                    framework.id, offer.role, offer.agent_id, offer.resources, now=master.clock()
                )
            for operation in accept.operations:
                for task in _operation_tasks(operation):
                    state = mesos_pb2.TASK_DROPPED if framework.partition_aware else \
                        mesos_pb2.TASK_LOST
                    self._master_update(framework, task.task_id.value, task.agent_id.value,
                                        state, Status.REASON_INVALID_OFFERS, error)
            master.schedule_allocation()
            return
        for offer in offers:
            master.remove_offer(offer.proto.id.value)
        pool = Resources()
        for offer in offers:
            pool = pool + offer.resources
        if offers:
            agent = master.agents.get(offers[0].agent_id)
            role = offers[0].role
            for operation in accept.operations:
                pool = self._operate(framework, agent, role, operation, pool)
            refuse_seconds = DEFAULT_REFUSE_SECONDS if refuse is None or refuse < 0 else refuse
            master.allocator.recover(
                framework.id, role, offers[0].agent_id, pool,
                now=master.clock(), refuse_seconds=refuse_seconds,
            )
        master.schedule_allocation()

    def _operate(self, framework: Framework, agent: Agent | None, role: str,
                 operation: mesos_pb2.Offer.Operation, pool: Resources) -> Resources:
        """Apply one offer operation to the pool of offered resources; returns what is left."""
        kind = operation.type
        if kind == Operation.LAUNCH:
            for task in operation.launch.task_infos:
                pool = self._launch(framework, agent, role, task, pool)
            return pool
        if kind in (Operation.RESERVE, Operation.UNRESERVE) and agent is not None:
            reserve = kind == Operation.RESERVE
            source = operation.reserve.resources if reserve else operation.unreserve.resources
            try:
                return self.master.reservations.offer_operation(
                    framework, agent, role, reserve, Resources.from_proto(source), pool)
            except RuntimeErrorBase as exc:
                # As Mesos: an invalid operation is dropped; the rest of the ACCEPT goes on.
                log.warning("framework %s: dropping %s operation: %s", framework.id,
                            Operation.Type.Name(kind), exc)
                return pool
        name = Operation.Type.Name(kind)
        log.warning("framework %s: operation %s is not supported", framework.id, name)
        for task in _operation_tasks(operation):  # never silently: each task hears why
            self._master_update(framework, task.task_id.value, task.agent_id.value,
                                mesos_pb2.TASK_ERROR, Status.REASON_TASK_INVALID,
                                f"Operation {name} is not supported by this master")
        return pool

    def _validate_offers(self, framework: Framework, offer_ids: list[str]) -> str | None:
        if len(set(offer_ids)) != len(offer_ids):
            return "Duplicate offers found in the offer list"
        agents = set()
        roles = set()
        for offer_id in offer_ids:
            offer = self.master.offers.get(offer_id)
            if offer is None:
                return f"Offer {offer_id} is no longer valid"
            if offer.framework_id != framework.id:
                return f"Offer {offer_id} has invalid framework"
            agents.add(offer.agent_id)
            roles.add(offer.role)
        if len(agents) > 1:
            return "Aggregated offers must belong to one single agent"
        if len(roles) > 1:
            return "Aggregated offers must be allocated to the same role"
        return None

    def _task_error(self, framework: Framework, task: mesos_pb2.TaskInfo, role: str,
                    pool: Resources, agent: Agent | None) -> tuple[str | None, Resources]:
        task_id = task.task_id.value
        problem = id_error(task_id)
        if problem is not None:
            return f"Task ID '{task_id}' is invalid: {problem}", Resources()
        existing = framework.tasks.get(task_id)
        if existing is not None and existing.state not in TERMINAL_STATES:
            return f"Task has duplicate ID: {task_id}", Resources()
        if agent is None or task.agent_id.value != agent.id:
            return f"Task uses invalid agent: {task.agent_id.value}", Resources()
        if task.HasField("executor") == task.HasField("command"):
            return "Task should have at least one (but not both) of CommandInfo or " \
                   "ExecutorInfo present", Resources()
        if task.HasField("executor"):
            executor_id = task.executor.executor_id.value
            problem = id_error(executor_id)
            if problem is not None:
                return f"Executor ID '{executor_id}' is invalid: {problem}", Resources()
            # As Mesos: later tasks for an executor the agent already has must carry the same
            # ExecutorInfo; the first one's is what the executor was started with.
            executor = self._executors.get((agent.id, framework.id, executor_id))
            if executor is not None and not compatible_executors(
                    executor_as_launched(task.executor, framework.id, role), executor.info):
                return ("ExecutorInfo is not compatible with existing ExecutorInfo with same "
                        f"ExecutorID '{executor_id}'"), Resources()
        try:
            resources = Resources.from_proto(task.resources)
            if task.HasField("executor"):
                key = (agent.id, framework.id, task.executor.executor_id.value)
                if key not in self._executors:
                    resources = resources + Resources.from_proto(task.executor.resources)
        except BadRequest as exc:
            return f"Task has invalid resources: {exc}", Resources()
        if not resources:
            return "Task uses no resources", Resources()
        if not pool.contains(resources):
            return (f"Task uses more resources {resources.text()} than available "
                    f"{pool.text()}"), Resources()
        return None, resources

    def _launch(self, framework: Framework, agent: Agent | None, role: str,
                task: mesos_pb2.TaskInfo, pool: Resources) -> Resources:
        master = self.master
        error, resources = self._task_error(framework, task, role, pool, agent)
        if error is not None or agent is None:
            self._master_update(framework, task.task_id.value, task.agent_id.value,
                                mesos_pb2.TASK_ERROR, Status.REASON_TASK_INVALID,
                                error or "invalid task")
            return pool
        info = mesos_pb2.TaskInfo()
        info.CopyFrom(task)
        for res in info.resources:
            res.allocation_info.role = role
        if info.HasField("executor"):
            info.executor.CopyFrom(executor_as_launched(task.executor, framework.id, role))
            key = (agent.id, framework.id, info.executor.executor_id.value)
            if key not in self._executors:
                self._executors[key] = Executor(info.executor, agent.id, role,
                                                Resources.from_proto(task.executor.resources))
        record = Task(info, framework.id, agent.id, role, Resources.from_proto(task.resources),
                      user=framework.info.user)
        framework.tasks[record.task_id] = record
        agent.tasks.setdefault(framework.id, set()).add(record.task_id)
        run = internal_pb2.MasterMessage()
        run.run_task.framework_info.CopyFrom(framework.info)
        run.run_task.task.CopyFrom(info)
        agent.send(run)
        master.metrics["master/tasks_launched"] += 1
        return pool - resources

    def decline(self, framework: Framework, decline: scheduler_pb2.Call.Decline) -> None:
        accept = scheduler_pb2.Call.Accept()
        accept.offer_ids.extend(decline.offer_ids)
        if decline.HasField("filters"):
            accept.filters.CopyFrom(decline.filters)
        self.accept(framework, accept)

    # Status updates ------------------------------------------------------------------------
    def status_update(self, agent: Agent, update: internal_pb2.StatusUpdate) -> None:
        master = self.master
        status = update.status
        framework = master.frameworks.get(update.framework_id.value)
        if framework is None:
            return
        task = framework.tasks.get(status.task_id.value)
        if task is not None:
            latest = update.latest_state if update.HasField("latest_state") else status.state
            was_terminal = task.state in TERMINAL_STATES
            task.state = latest
            if not task.statuses or task.statuses[-1].uuid != status.uuid or not status.uuid:
                stored = mesos_pb2.TaskStatus()
                stored.CopyFrom(status)
                stored.ClearField("data")
                task.statuses.append(stored)
            if latest in TERMINAL_STATES and not was_terminal:
                self.free_task(task)
            if status.state in TERMINAL_STATES and status.uuid:
                task.terminal_uuid = status.uuid
        event = scheduler_pb2.Event(type=scheduler_pb2.Event.UPDATE)
        event.update.status.CopyFrom(status)
        framework.send(event)

    def free_task(self, task: Task) -> None:
        self.master.allocator.recover(
            task.framework_id, task.role, task.agent_id, task.resources, now=self.master.clock()
        )
        self.master.schedule_allocation()

    def forget_task(self, task: Task) -> None:
        framework = self.master.frameworks.get(task.framework_id)
        agent = self.master.agents.get(task.agent_id)
        if agent is not None:
            agent.tasks.get(task.framework_id, set()).discard(task.task_id)
        owner = framework or next(
            (f for f in self.master.completed_frameworks if f.id == task.framework_id), None
        )
        if owner is not None:
            owner.tasks.pop(task.task_id, None)
            owner.completed_tasks.append(task)

    def acknowledge(self, framework: Framework, ack: scheduler_pb2.Call.Acknowledge) -> None:
        if len(ack.uuid) != 16:
            raise BadRequest("'acknowledge.uuid' must be a 16-byte UUID")
        agent = self.master.agents.get(ack.agent_id.value)
        if agent is None:
            raise BadRequest(f"Unknown agent {ack.agent_id.value}")
        task = framework.tasks.get(ack.task_id.value)
        message = internal_pb2.MasterMessage()
        message.acknowledge.framework_id.value = framework.id
        message.acknowledge.task_id.CopyFrom(ack.task_id)
        message.acknowledge.uuid = ack.uuid
        agent.send(message)
        if task is not None and task.terminal_uuid == ack.uuid:
            self.forget_task(task)

    # Kill, shutdown, messages --------------------------------------------------------------
    def kill(self, framework: Framework, kill: scheduler_pb2.Call.Kill) -> None:
        task = framework.tasks.get(kill.task_id.value)
        if task is None:
            reconcile = scheduler_pb2.Call.Reconcile()
            item = reconcile.tasks.add()
            item.task_id.CopyFrom(kill.task_id)
            if kill.HasField("agent_id"):
                item.agent_id.CopyFrom(kill.agent_id)
            self.reconcile(framework, reconcile)
            return
        agent = self.master.agents.get(task.agent_id)
        if agent is None:
            return
        message = internal_pb2.MasterMessage()
        message.kill_task.framework_id.value = framework.id
        message.kill_task.task_id.CopyFrom(kill.task_id)
        if kill.HasField("kill_policy"):
            message.kill_task.kill_policy.CopyFrom(kill.kill_policy)
        elif task.info.HasField("kill_policy"):
            message.kill_task.kill_policy.CopyFrom(task.info.kill_policy)
        agent.send(message)

    def shutdown(self, framework: Framework, shutdown: scheduler_pb2.Call.Shutdown) -> None:
        agent = self.master.agents.get(shutdown.agent_id.value)
        if agent is None:
            raise BadRequest(f"Unknown agent {shutdown.agent_id.value}")
        message = internal_pb2.MasterMessage()
        message.shutdown_executor.framework_id.value = framework.id
        message.shutdown_executor.executor_id.CopyFrom(shutdown.executor_id)
        agent.send(message)

    def message(self, framework: Framework, call: scheduler_pb2.Call.Message) -> None:
        agent = self.master.agents.get(call.agent_id.value)
        if agent is None:
            raise BadRequest(f"Unknown agent {call.agent_id.value}")
        message = internal_pb2.MasterMessage()
        message.framework_message.framework_id.value = framework.id
        message.framework_message.executor_id.CopyFrom(call.executor_id)
        message.framework_message.data = call.data
        agent.send(message)

    def executor_message(self, agent: Agent, message: internal_pb2.ExecutorToFramework) -> None:
        framework = self.master.frameworks.get(message.framework_id.value)
        if framework is None:
            return
        event = scheduler_pb2.Event(type=scheduler_pb2.Event.MESSAGE)
        event.message.agent_id.value = agent.id
        event.message.executor_id.CopyFrom(message.executor_id)
        event.message.data = message.data
        framework.send(event)

    def executor_exited(self, agent: Agent, exited: internal_pb2.ExecutorExited) -> None:
        self._remove_executor((agent.id, exited.framework_id.value, exited.executor_id.value))
        framework = self.master.frameworks.get(exited.framework_id.value)
        if framework is not None:
            event = scheduler_pb2.Event(type=scheduler_pb2.Event.FAILURE)
            event.failure.agent_id.value = agent.id
            event.failure.executor_id.CopyFrom(exited.executor_id)
            event.failure.status = exited.status
            framework.send(event)

    def used_on(self, agent_id: str) -> Resources:
        """What live tasks and custom executors hold on an agent (offers not included)."""
        used = Resources()
        agent = self.master.agents.get(agent_id)
        for framework_id, task_ids in (agent.tasks.items() if agent else ()):
            framework = self.master.frameworks.get(framework_id)
            for task_id in task_ids:
                task = framework.tasks.get(task_id) if framework else None
                if task is not None and task.state not in TERMINAL_STATES:
                    used = used + task.resources
        for executor in self._executors.values():
            if executor.agent_id == agent_id:
                used = used + executor.resources
        return used

    def executors_on(self, agent: Agent) -> set[str]:
        """Ids of the frameworks with a custom executor on the agent."""
        return {fid for (aid, fid, _) in self._executors if aid == agent.id}

    def executors_of(self, framework_id: str) -> list[Executor]:
        return [e for (_, fid, _), e in self._executors.items() if fid == framework_id]

    def forget_framework_executors(self, framework_id: str) -> None:
        for key in [k for k in self._executors if k[1] == framework_id]:
            self._remove_executor(key)

    def _remove_executor(self, key: ExecutorKey) -> None:
        """Forget a custom executor and give back what it held (its tasks are not touched)."""
        executor = self._executors.pop(key, None)
        if executor is not None:
            self.master.allocator.recover(key[1], executor.role, key[0], executor.resources,
                                          now=self.master.clock())
            self.master.schedule_allocation()

    def _adopt_executor(self, agent: Agent, info: mesos_pb2.ExecutorInfo) -> None:
        """A custom executor an agent reports that this master did not launch (it failed over,
        or the agent was away): account for it as if launched here."""
        key = (agent.id, info.framework_id.value, info.executor_id.value)
        if generated_for_command_task(info) or key in self._executors:
            return
        record = mesos_pb2.ExecutorInfo()
        record.CopyFrom(info)
        resources = Resources.from_proto(record.resources)
        role = next((r.allocation_info.role for r in record.resources
                     if r.allocation_info.role), "*")
        self._executors[key] = Executor(record, agent.id, role, resources)
        if resources:
            self.master.allocator.allocate_resources(key[1], role, agent.id, resources)

    def _sync_executors(self, agent: Agent,
                        executors: Iterable[internal_pb2.ExecutorState]) -> None:
        """As Mesos on re-registration: executors the master has but the agent does not report
        are removed (their resources go back); those it reports are adopted."""
        reported = [state.executor_info for state in executors]
        keys = {(agent.id, i.framework_id.value, i.executor_id.value) for i in reported}
        for key in [k for k in self._executors if k[0] == agent.id and k not in keys]:
            self._remove_executor(key)
        for info in reported:
            if info.framework_id.value in self.master.frameworks:
                self._adopt_executor(agent, info)

    # Reconciliation --------------------------------------------------------------------------
    def reconcile(self, framework: Framework, reconcile: scheduler_pb2.Call.Reconcile) -> None:
        if not reconcile.tasks:
            for task in framework.tasks.values():
                self._reconcile_update(framework, task.task_id, task.agent_id,
                                       task.reported_state(framework.partition_aware),
                                       task.statuses[-1] if task.statuses else None,
                                       unreachable_time=task.unreachable_time)
            return
        for item in reconcile.tasks:
            known = framework.tasks.get(item.task_id.value)
            if known is not None:
                self._reconcile_update(framework, known.task_id, known.agent_id,
                                       known.reported_state(framework.partition_aware),
                                       known.statuses[-1] if known.statuses else None,
                                       unreachable_time=known.unreachable_time)
                continue
            agent_id = item.agent_id.value if item.HasField("agent_id") else ""
            answer = self._unknown_task_state(agent_id)
            if answer is None:
                log.info("framework %s: not answering the reconciliation of task %s: %s not "
                         "re-registered yet", framework.id, item.task_id.value,
                         f"agent {agent_id} has" if agent_id else "some agents have")
                continue
            state, unreachable_time = answer
            if not framework.partition_aware:
                state = mesos_pb2.TASK_LOST
            self._reconcile_update(framework, item.task_id.value, agent_id, state, None,
                                   unreachable_time=unreachable_time)

    def _unknown_task_state(self, agent_id: str) -> tuple[int, float | None] | None:
        """Mesos's explicit reconciliation of a task the master does not know (``master.cpp``,
        ``Master::reconcile``), by what is known of the agent named (``agent_id``, may be empty):

            agent recovered from the registry, not re-registered yet  -> no answer (retry)
            no agent named, and some agent is still recovered          -> no answer (retry)
            agent registered                                           -> TASK_GONE
            agent unreachable                                          -> TASK_UNREACHABLE
            agent unknown (or none named)                              -> TASK_UNKNOWN

        with the time the agent became unreachable. (No MARK_AGENT_GONE here, so never
        TASK_GONE_BY_OPERATOR.) Frameworks that are not PARTITION_AWARE get TASK_LOST instead.
        """
        master = self.master
        recovered = master.recovered_agents
        if (agent_id in recovered) if agent_id else bool(recovered):
            return None
        agent = master.agents.get(agent_id) if agent_id else None
        if agent is not None and agent.unreachable_time is None:
            return mesos_pb2.TASK_GONE, None
        unreachable = (agent.unreachable_time if agent is not None
                       else master.registry.state.unreachable.get(agent_id))
        if unreachable is not None:
            return mesos_pb2.TASK_UNREACHABLE, unreachable
        return mesos_pb2.TASK_UNKNOWN, None

    def _reconcile_update(self, framework: Framework, task_id: str, agent_id: str, state: int,
                          last: mesos_pb2.TaskStatus | None, *,
                          unreachable_time: float | None = None) -> None:
        event = scheduler_pb2.Event(type=scheduler_pb2.Event.UPDATE)
        status = event.update.status
        if last is not None:
            status.CopyFrom(last)
            status.ClearField("uuid")
        status.task_id.value = task_id
        if agent_id:
            status.agent_id.value = agent_id
        if unreachable_time is not None:
            status.unreachable_time.nanoseconds = int(unreachable_time * 1e9)
        status.state = state  # type: ignore[assignment]
        status.source = Status.SOURCE_MASTER
        status.reason = Status.REASON_RECONCILIATION
        status.timestamp = self.master.clock()
        framework.send(event)

    def _master_update(self, framework: Framework, task_id: str, agent_id: str, state: int,
                       reason: int, message: str) -> None:
        event = scheduler_pb2.Event(type=scheduler_pb2.Event.UPDATE)
        status = event.update.status
        status.task_id.value = task_id
        if agent_id:
            status.agent_id.value = agent_id
        status.state = state  # type: ignore[assignment]
        status.source = Status.SOURCE_MASTER
        status.reason = reason  # type: ignore[assignment]
        status.message = message
        status.timestamp = self.master.clock()
        framework.send(event)

    # Agents ------------------------------------------------------------------------------
    def recover_executor(self, agent: Agent, state: internal_pb2.ExecutorState) -> None:
        """A re-registering agent reports what runs on it; adopt it (after a master restart)."""
        master = self.master
        framework_id = state.framework_info.id.value
        framework = master.frameworks.get(framework_id)
        if framework is None:
            framework = Framework(framework_id, state.framework_info,
                                  registered_time=master.clock(), recovered=True)
            master.frameworks[framework_id] = framework
            master.allocator.add_framework(framework_id, framework.roles)
            master.allocator.deactivate_framework(framework_id)
        custom = state.HasField("executor_info") and not generated_for_command_task(
            state.executor_info)
        if custom:
            self._adopt_executor(agent, state.executor_info)
        for proto in state.tasks:
            if proto.task_id.value in framework.tasks:
                continue
            resources = Resources.from_proto(proto.resources)
            role = proto.resources[0].allocation_info.role if proto.resources else "*"
            info = mesos_pb2.TaskInfo(name=proto.name)
            info.task_id.CopyFrom(proto.task_id)
            info.agent_id.CopyFrom(proto.agent_id)
            info.resources.extend(proto.resources)
            if custom:
                info.executor.CopyFrom(state.executor_info)
            task = Task(info, framework_id, agent.id, role or "*", resources, state=proto.state,
                        statuses=list(proto.statuses), user=proto.user)
            framework.tasks[task.task_id] = task
            agent.tasks.setdefault(framework_id, set()).add(task.task_id)
            if proto.state not in TERMINAL_STATES:
                master.allocator.allocate_resources(framework_id, task.role, agent.id, resources)

    def agent_unreachable(self, agent: Agent, why: str) -> None:
        """Tell frameworks their tasks there are UNREACHABLE (PARTITION_AWARE) or LOST."""
        now = self.master.clock()
        for framework_id, task_ids in agent.tasks.items():
            framework = self.master.frameworks.get(framework_id)
            for task_id in sorted(task_ids):
                task = framework.tasks.get(task_id) if framework else None
                if framework is None or task is None or task.state in TERMINAL_STATES:
                    continue
                task.unreachable_time = now
                self._master_update(framework, task_id, agent.id,
                                    task.reported_state(framework.partition_aware),
                                    Status.REASON_AGENT_REMOVED,
                                    f"Agent {agent.id} is unreachable: {why}")

    def agent_reachable(self, agent: Agent,
                        executors: Iterable[internal_pb2.ExecutorState]) -> None:
        """The agent is back: its tasks are what it says; those it lost are gone."""
        executors = list(executors)
        self._sync_executors(agent, executors)
        reported = {task.task_id.value: task for state in executors for task in state.tasks}
        for framework_id, task_ids in agent.tasks.items():
            framework = self.master.frameworks.get(framework_id)
            for task_id in sorted(task_ids):
                task = framework.tasks.get(task_id) if framework else None
                if framework is None or task is None or task.unreachable_time is None:
                    continue
                task.unreachable_time = None
                known = reported.get(task_id)
                if known is not None and known.state not in TERMINAL_STATES:
                    task.state = known.state
                    self._master_update(framework, task_id, agent.id, known.state,
                                        Status.REASON_AGENT_REREGISTERED,
                                        f"Agent {agent.id} re-registered")
                    continue
                state = mesos_pb2.TASK_GONE if framework.partition_aware else mesos_pb2.TASK_LOST
                self._end_task(framework, task, state, Status.REASON_AGENT_REREGISTERED,
                               f"Agent {agent.id} re-registered without this task")

    def agent_reregistered(self, agent: Agent,
                           executors: Iterable[internal_pb2.ExecutorState]) -> None:
        """Tasks the master placed on the agent that the agent does not report are gone (it
        restarted before it could keep them): say so, rather than leave them STAGING forever."""
        executors = list(executors)
        self._sync_executors(agent, executors)
        reported = {task.task_id.value for state in executors for task in state.tasks}
        for framework_id, task_ids in list(agent.tasks.items()):
            framework = self.master.frameworks.get(framework_id)
            for task_id in sorted(task_ids):
                task = framework.tasks.get(task_id) if framework else None
                if (framework is None or task is None or task_id in reported
                        or task.state in TERMINAL_STATES):
                    continue
                if framework.partition_aware:
                    state = mesos_pb2.TASK_DROPPED if task.state == mesos_pb2.TASK_STAGING \
                        else mesos_pb2.TASK_GONE
                else:
                    state = mesos_pb2.TASK_LOST
                self._end_task(framework, task, state, Status.REASON_AGENT_RESTARTED,
                               f"Agent {agent.id} re-registered without this task")

    def _end_task(self, framework: Framework, task: Task, state: int, reason: int,
                  message: str, *, free: bool = True) -> None:
        """The master ends a task its agent can no longer speak for, and says so."""
        task.state = state
        if free:
            self.free_task(task)
        self._master_update(framework, task.task_id, task.agent_id, state, reason, message)
        self.forget_task(task)

    def agent_removed(self, agent: Agent) -> None:
        for framework_id, task_ids in agent.tasks.items():
            framework = self.master.frameworks.get(framework_id)
            if framework is None:
                continue
            for task_id in list(task_ids):
                task = framework.tasks.get(task_id)
                if task is None or task.state in TERMINAL_STATES:
                    continue
                state = mesos_pb2.TASK_GONE if framework.partition_aware else mesos_pb2.TASK_LOST
                # No free: the allocator drops the whole agent, and its allocations with it.
                self._end_task(framework, task, state, Status.REASON_AGENT_REMOVED,
                               "Agent removed", free=False)
        for key in [k for k in self._executors if k[0] == agent.id]:
            del self._executors[key]


def _operation_tasks(operation: mesos_pb2.Offer.Operation) -> list[mesos_pb2.TaskInfo]:
    if operation.type == mesos_pb2.Offer.Operation.LAUNCH:
        return list(operation.launch.task_infos)
    if operation.type == mesos_pb2.Offer.Operation.LAUNCH_GROUP:
        return list(operation.launch_group.task_group.tasks)
    return []


__all__ = ["Offer", "TaskLauncher"]
