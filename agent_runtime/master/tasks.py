"""Tasks in the master: ACCEPT/DECLINE, launching, status updates, acknowledgements, kills,
shutdowns and framework messages, and the master's own status updates.

:class:`TaskLauncher` is the master's one entry point for tasks; it hands custom executors to
:mod:`agent_runtime.master.executors`, RECONCILE to :mod:`agent_runtime.master.reconciliation`,
and agent lifecycle events to :mod:`agent_runtime.master.agent_tasks`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from agent_runtime.errors import BadRequest, RuntimeErrorBase
from agent_runtime.ids import id_error
from agent_runtime.master.agent_tasks import AgentTasks
from agent_runtime.master.executors import CustomExecutors, executor_as_launched
from agent_runtime.master.model import (
    TERMINAL_STATES,
    Agent,
    Executor,
    Framework,
    Offer,
    Task,
    tasks_on,
)
from agent_runtime.master.reconciliation import Reconciler
from agent_runtime.proto import internal_pb2, mesos_pb2, scheduler_pb2
from agent_runtime.resources import Resources

if TYPE_CHECKING:
    from agent_runtime.master.master import Master

log = logging.getLogger(__name__)
Operation = mesos_pb2.Offer.Operation

Status = mesos_pb2.TaskStatus
DEFAULT_REFUSE_SECONDS = 5.0


class TaskLauncher:
    """Owns the task side of the master; :class:`Master` owns frameworks, agents and offers."""

    def __init__(self, master: Master) -> None:
        self.master = master
        self.executors = CustomExecutors(master)
        self.reconciler = Reconciler(master)
        self.agent_tasks = AgentTasks(self)

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
                    self.master_update(framework, task.task_id.value, task.agent_id.value,
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
            self.master_update(framework, task.task_id.value, task.agent_id.value,
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
            error = self.executors.launch_error(
                (agent.id, framework.id, executor_id),
                executor_as_launched(task.executor, framework.id, role))
            if error is not None:
                return error, Resources()
        try:
            resources = Resources.from_proto(task.resources)
            if task.HasField("executor"):
                key = (agent.id, framework.id, task.executor.executor_id.value)
                if not self.executors.knows(key):
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
            self.master_update(framework, task.task_id.value, task.agent_id.value,
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
            if not self.executors.knows(key):
                self.executors.add(Executor(info.executor, agent.id, role,
                                            Resources.from_proto(task.executor.resources)))
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
        self.executors.remove((agent.id, exited.framework_id.value, exited.executor_id.value))
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
        for _, task in tasks_on(agent, self.master.frameworks) if agent else ():
            if task.state not in TERMINAL_STATES:
                used = used + task.resources
        return used + self.executors.used_on(agent_id)

    def executors_on(self, agent: Agent) -> set[str]:
        """Ids of the frameworks with a custom executor on the agent."""
        return self.executors.frameworks_on(agent.id)

    def executors_of(self, framework_id: str) -> list[Executor]:
        return self.executors.of(framework_id)

    def forget_framework_executors(self, framework_id: str) -> None:
        self.executors.forget_framework(framework_id)

    # Reconciliation: see reconciliation.py --------------------------------------------
    def reconcile(self, framework: Framework, reconcile: scheduler_pb2.Call.Reconcile) -> None:
        self.reconciler.reconcile(framework, reconcile)

    # The master's own status updates ------------------------------------------------
    def master_update(self, framework: Framework, task_id: str, agent_id: str, state: int,
                      reason: int, message: str) -> None:
        """Tell the framework of a task state the master decided (source SOURCE_MASTER)."""
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

    # Agents: see agent_tasks.py ----------------------------------------------------------
    def recover_executor(self, agent: Agent, state: internal_pb2.ExecutorState) -> None:
        self.agent_tasks.recover_executor(agent, state)

    def agent_unreachable(self, agent: Agent, why: str) -> None:
        self.agent_tasks.unreachable(agent, why)

    def agent_reachable(self, agent: Agent,
                        executors: Iterable[internal_pb2.ExecutorState]) -> None:
        self.agent_tasks.reachable(agent, executors)

    def agent_reregistered(self, agent: Agent,
                           executors: Iterable[internal_pb2.ExecutorState]) -> None:
        self.agent_tasks.reregistered(agent, executors)

    def agent_removed(self, agent: Agent) -> None:
        self.agent_tasks.removed(agent)


def _operation_tasks(operation: mesos_pb2.Offer.Operation) -> list[mesos_pb2.TaskInfo]:
    if operation.type == mesos_pb2.Offer.Operation.LAUNCH:
        return list(operation.launch.task_infos)
    if operation.type == mesos_pb2.Offer.Operation.LAUNCH_GROUP:
        return list(operation.launch_group.task_group.tasks)
    return []


__all__ = ["Offer", "TaskLauncher"]
