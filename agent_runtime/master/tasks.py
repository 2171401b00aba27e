"""Tasks in the master: ACCEPT/DECLINE, launching, status updates, acknowledgements, kills,
shutdowns, framework and executor messages, and executors that exit.

:class:`TaskLauncher` answers what schedulers and agents say about tasks. It decides with the
book and acts through the effects; custom executors are :mod:`agent_runtime.master.executors`'s,
RECONCILE is :mod:`agent_runtime.master.reconciliation`'s, and what agent lifecycle events do to
tasks is :mod:`agent_runtime.master.agent_tasks`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from agent_runtime.errors import BadRequest, RuntimeErrorBase
from agent_runtime.ids import id_error
from agent_runtime.master.allocator import Allocator
from agent_runtime.master.book import MasterBook
from agent_runtime.master.check_validation import checks_error
from agent_runtime.master.effects import MasterEffects
from agent_runtime.master.executors import CustomExecutors, executor_as_launched
from agent_runtime.master.model import Agent, Executor, Framework, Task
from agent_runtime.master.offers import Offers
from agent_runtime.master.reconciliation import Reconciler
from agent_runtime.master.reservations import Reservations
from agent_runtime.master.task_ends import TaskEnds
from agent_runtime.master.task_groups import TaskGroups
from agent_runtime.proto import internal_pb2, mesos_pb2, scheduler_pb2
from agent_runtime.resources import Resources
from agent_runtime.task_states import TERMINAL_STATES, IllegalTransition

log = logging.getLogger(__name__)
Operation = mesos_pb2.Offer.Operation

Status = mesos_pb2.TaskStatus
DEFAULT_REFUSE_SECONDS = 5.0


# gRPC's default limit on a received message is 4 MiB; keep room for the envelope.
MAX_RUN_TASK = 4 * 1024 * 1024 - 64 * 1024

class TaskLauncher:
    def __init__(self, book: MasterBook, effects: MasterEffects, allocator: Allocator, *,
                 offers: Offers, reservations: Reservations, executors: CustomExecutors,
                 reconciler: Reconciler, ends: TaskEnds) -> None:
        self.book = book
        self.effects = effects
        self.allocator = allocator
        self.offers = offers
        self.reservations = reservations
        self.executors = executors
        self.reconciler = reconciler
        self.ends = ends
        self.groups = TaskGroups(book, effects, executors, ends, MAX_RUN_TASK)
        # The run_tasks ACL (set by mesos-master, see master/security.py): why a task may not
        # run, or None. A refused task ends in TASK_ERROR; the rest of the ACCEPT goes on.
        self.refusal: Callable[[Framework, mesos_pb2.TaskInfo], str | None] = (
            lambda framework, task: None)

    # ACCEPT / DECLINE ------------------------------------------------------------------------
    def accept(self, framework: Framework, accept: scheduler_pb2.Call.Accept) -> None:
        book = self.book
        offer_ids = [o.value for o in accept.offer_ids]
        refuse = accept.filters.refuse_seconds if accept.HasField("filters") else None
        error = self._validate_offers(framework, offer_ids)
        offers = [book.offers[o] for o in offer_ids if o in book.offers
                  and book.offers[o].framework_id == framework.id]
        if error is not None:
            for offer in offers:
                self.offers.give_back(offer.proto.id.value)
            for operation in accept.operations:
                for task in _operation_tasks(operation):
                    state = mesos_pb2.TASK_DROPPED if framework.partition_aware else \
                        mesos_pb2.TASK_LOST
                    self.ends.report(framework, task.task_id.value, task.agent_id.value,
                                     state, Status.REASON_INVALID_OFFERS, error)
            return
        for offer in offers:
            self.offers.take(offer.proto.id.value)
        pool = Resources()
        for offer in offers:
            pool = pool + offer.resources
        if offers:
            agent = book.agents.get(offers[0].agent_id)
            role = offers[0].role
            for operation in accept.operations:
                pool = self._operate(framework, agent, role, operation, pool)
            refuse_seconds = DEFAULT_REFUSE_SECONDS if refuse is None or refuse < 0 else refuse
            self.allocator.recover(
                framework.id, role, offers[0].agent_id, pool,
                now=self.effects.now(), refuse_seconds=refuse_seconds,
            )
        # What an ACCEPT or DECLINE leaves goes out with the next batched allocation
        # (--allocation_interval), as Mesos's recoverResources does; no allocation at once.

    def _operate(self, framework: Framework, agent: Agent | None, role: str,
                 operation: mesos_pb2.Offer.Operation, pool: Resources) -> Resources:
        """Apply one offer operation to the pool of offered resources; returns what is left."""
        kind = operation.type
        if kind == Operation.LAUNCH:
            for task in operation.launch.task_infos:
                pool = self._launch(framework, agent, role, task, pool)
            return pool
        if kind == Operation.LAUNCH_GROUP:
            return self.groups.launch(framework, agent, role, operation.launch_group, pool)
        if kind in (Operation.RESERVE, Operation.UNRESERVE) and agent is not None:
            reserve = kind == Operation.RESERVE
            source = operation.reserve.resources if reserve else operation.unreserve.resources
            try:
                return self.reservations.offer_operation(
                    framework, agent, role, reserve, Resources.from_proto(source), pool)
            except RuntimeErrorBase as exc:
                # As Mesos: an invalid operation is dropped; the rest of the ACCEPT goes on.
                log.warning("framework %s: dropping %s operation: %s", framework.id,
                            Operation.Type.Name(kind), exc)
                return pool
        name = Operation.Type.Name(kind)
        log.warning("framework %s: operation %s is not supported", framework.id, name)
        for task in _operation_tasks(operation):  # never silently: each task hears why
            self.ends.report(framework, task.task_id.value, task.agent_id.value,
                             mesos_pb2.TASK_ERROR, Status.REASON_TASK_INVALID,
                             f"Operation {name} is not supported by this master")
        return pool

    def _validate_offers(self, framework: Framework, offer_ids: list[str]) -> str | None:
        if len(set(offer_ids)) != len(offer_ids):
            return "Duplicate offers found in the offer list"
        agents = set()
        roles = set()
        for offer_id in offer_ids:
            offer = self.book.offers.get(offer_id)
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
        if existing is not None and not existing.terminal:
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
        error = checks_error(task)
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
        error, resources = self._task_error(framework, task, role, pool, agent)
        size = task.ByteSize() + framework.info.ByteSize()
        if error is None and size > MAX_RUN_TASK:
            # Refused here, not by gRPC at the agent, which would drop the whole link.
            error = (f"TaskInfo and FrameworkInfo are {size} bytes; the agent link carries "
                     f"{MAX_RUN_TASK} at most")
        if error is not None or agent is None:
            self.ends.report(framework, task.task_id.value, task.agent_id.value,
                             mesos_pb2.TASK_ERROR, Status.REASON_TASK_INVALID,
                             error or "invalid task")
            return pool
        refused = self.refusal(framework, task)
        if refused is not None:
            self.ends.report(framework, task.task_id.value, agent.id, mesos_pb2.TASK_ERROR,
                             Status.REASON_TASK_UNAUTHORIZED, refused)
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
        self.book.add_task(framework, agent, record)
        run = internal_pb2.MasterMessage()
        run.run_task.framework_info.CopyFrom(framework.info)
        run.run_task.task.CopyFrom(info)
        self.effects.to_agent(agent, run)
        self.effects.count("master/tasks_launched")
        return pool - resources

    def decline(self, framework: Framework, decline: scheduler_pb2.Call.Decline) -> None:
        """As Mesos's ``Master::decline``: each offer goes back on its own, with the filter;
        offers on several agents may be declined in one call. An offer that is gone or not
        the framework's is ignored (it was rescinded or already answered)."""
        refuse = decline.filters.refuse_seconds if decline.HasField("filters") else None
        refuse_seconds = DEFAULT_REFUSE_SECONDS if refuse is None or refuse < 0 else refuse
        offers = self.book.offers
        for offer_id in decline.offer_ids:
            offer = offers.get(offer_id.value)
            if offer is not None and offer.framework_id == framework.id:
                self.offers.give_back(offer_id.value, refuse_seconds=refuse_seconds)

    # Status updates ------------------------------------------------------------------------
    def status_update(self, agent: Agent, update: internal_pb2.StatusUpdate) -> None:
        status = update.status
        framework = self.book.frameworks.get(update.framework_id.value)
        if framework is None:
            return
        task = framework.tasks.get(status.task_id.value)
        if task is not None and task.agent_id != agent.id:
            # Only a task's own agent speaks for it: another could end it while it runs.
            log.warning("agent %s sent an update for task %s of agent %s; dropped",
                        agent.id, status.task_id.value, task.agent_id)
            return
        if task is not None:
            self._record(task, update)
        event = scheduler_pb2.Event(type=scheduler_pb2.Event.UPDATE)
        event.update.status.CopyFrom(status)
        self.effects.to_framework(framework, event)

    def _record(self, task: Task, update: internal_pb2.StatusUpdate) -> None:
        """What an agent's update tells of a task: its latest state, its status history, and
        the uuid whose acknowledgement ends it in the master."""
        status = update.status
        latest = update.latest_state if update.HasField("latest_state") else status.state
        # As Mesos (``Master::updateTask``): a terminal state is kept; a retried or late
        # update does not move the task out of it.
        if not task.terminal:
            try:
                task.transition(latest)
            except IllegalTransition as exc:  # an agent's bug must not end its link
                log.warning("agent %s: %s", task.agent_id, exc)
            if task.terminal:
                self.ends.free(task)
        if not task.statuses or task.statuses[-1].uuid != status.uuid or not status.uuid:
            stored = mesos_pb2.TaskStatus()
            stored.CopyFrom(status)
            stored.ClearField("data")
            task.statuses.append(stored)
        if status.state in TERMINAL_STATES and status.uuid:
            task.terminal_uuid = status.uuid

    def acknowledge(self, framework: Framework, ack: scheduler_pb2.Call.Acknowledge) -> None:
        if len(ack.uuid) != 16:
            raise BadRequest("'acknowledge.uuid' must be a 16-byte UUID")
        agent = self._agent(ack.agent_id.value)
        task = framework.tasks.get(ack.task_id.value)
        message = internal_pb2.MasterMessage()
        message.acknowledge.framework_id.value = framework.id
        message.acknowledge.task_id.CopyFrom(ack.task_id)
        message.acknowledge.uuid = ack.uuid
        self.effects.to_agent(agent, message)
        if task is not None and task.terminal_uuid == ack.uuid:
            self.book.forget_task(task)

    # Kill, shutdown, messages --------------------------------------------------------------
    def kill(self, framework: Framework, kill: scheduler_pb2.Call.Kill) -> None:
        task = framework.tasks.get(kill.task_id.value)
        if task is None:
            reconcile = scheduler_pb2.Call.Reconcile()
            item = reconcile.tasks.add()
            item.task_id.CopyFrom(kill.task_id)
            if kill.HasField("agent_id"):
                item.agent_id.CopyFrom(kill.agent_id)
            self.reconciler.reconcile(framework, reconcile)
            return
        agent = self.book.agents.get(task.agent_id)
        if agent is None:
            return
        message = internal_pb2.MasterMessage()
        message.kill_task.framework_id.value = framework.id
        message.kill_task.task_id.CopyFrom(kill.task_id)
        if kill.HasField("kill_policy"):
            message.kill_task.kill_policy.CopyFrom(kill.kill_policy)
        elif task.info.HasField("kill_policy"):
            message.kill_task.kill_policy.CopyFrom(task.info.kill_policy)
        self.effects.to_agent(agent, message)

    def shutdown(self, framework: Framework, shutdown: scheduler_pb2.Call.Shutdown) -> None:
        agent = self._agent(shutdown.agent_id.value)
        message = internal_pb2.MasterMessage()
        message.shutdown_executor.framework_id.value = framework.id
        message.shutdown_executor.executor_id.CopyFrom(shutdown.executor_id)
        self.effects.to_agent(agent, message)

    def message(self, framework: Framework, call: scheduler_pb2.Call.Message) -> None:
        agent = self._agent(call.agent_id.value)
        message = internal_pb2.MasterMessage()
        message.framework_message.framework_id.value = framework.id
        message.framework_message.executor_id.CopyFrom(call.executor_id)
        message.framework_message.data = call.data
        self.effects.to_agent(agent, message)

    def _agent(self, agent_id: str) -> Agent:
        agent = self.book.agents.get(agent_id)
        if agent is None:
            raise BadRequest(f"Unknown agent {agent_id}")
        return agent

    # From agents ---------------------------------------------------------------------------
    def executor_message(self, agent: Agent, message: internal_pb2.ExecutorToFramework) -> None:
        framework = self.book.frameworks.get(message.framework_id.value)
        if framework is None:
            return
        event = scheduler_pb2.Event(type=scheduler_pb2.Event.MESSAGE)
        event.message.agent_id.value = agent.id
        event.message.executor_id.CopyFrom(message.executor_id)
        event.message.data = message.data
        self.effects.to_framework(framework, event)

    def executor_exited(self, agent: Agent, exited: internal_pb2.ExecutorExited) -> None:
        self.executors.remove((agent.id, exited.framework_id.value, exited.executor_id.value))
        framework = self.book.frameworks.get(exited.framework_id.value)
        if framework is not None:
            event = scheduler_pb2.Event(type=scheduler_pb2.Event.FAILURE)
            event.failure.agent_id.value = agent.id
            event.failure.executor_id.CopyFrom(exited.executor_id)
            event.failure.status = exited.status
            self.effects.to_framework(framework, event)


def _operation_tasks(operation: mesos_pb2.Offer.Operation) -> list[mesos_pb2.TaskInfo]:
    if operation.type == mesos_pb2.Offer.Operation.LAUNCH:
        return list(operation.launch.task_infos)
    if operation.type == mesos_pb2.Offer.Operation.LAUNCH_GROUP:
        return list(operation.launch_group.task_group.tasks)
    return []


__all__ = ["TaskLauncher"]
