"""LAUNCH_GROUP in the master: validate a task group as Mesos does, record its tasks, and send
the group to its agent in one RunTaskGroup.

A group is all or nothing: one invalid task (or an invalid executor, or resources the offer does
not cover) fails every task of the group with TASK_ERROR and takes nothing from the offer. The
group's executor must be a DEFAULT one with no command of its own (the agent runs its default
executor for it, ``executors/default.py``); the tasks must not bring executors. The executor is
kept with the custom executors (it is no command executor): a later group naming the same
executor must carry the same ExecutorInfo, and the executor's resources are taken once.
"""

from __future__ import annotations

from agent_runtime.errors import BadRequest
from agent_runtime.executor_kind import COMMAND_EXECUTOR_PREFIX
from agent_runtime.ids import id_error
from agent_runtime.master.book import MasterBook
from agent_runtime.master.check_validation import checks_error
from agent_runtime.master.effects import MasterEffects
from agent_runtime.master.executors import CustomExecutors, executor_as_launched
from agent_runtime.master.model import Agent, Executor, Framework, Task
from agent_runtime.master.task_ends import TaskEnds
from agent_runtime.proto import internal_pb2, mesos_pb2
from agent_runtime.resources import Resources

Status = mesos_pb2.TaskStatus
ExecutorInfo = mesos_pb2.ExecutorInfo
# Ours (Mesos has no such knob): whether a task's failure or kill ends its group; the default
# executor reads it (executors/default.py).
GROUP_FAILURE_LABEL = "agent_runtime.task_group.failure_policy"
GROUP_FAILURE_POLICIES = ("KILL_GROUP", "CONTINUE")


class TaskGroups:
    def __init__(self, book: MasterBook, effects: MasterEffects, executors: CustomExecutors,
                 ends: TaskEnds, max_message: int) -> None:
        self.book = book
        self.effects = effects
        self.executors = executors
        self.ends = ends
        self.max_message = max_message  # what the agent link carries

    def launch(self, framework: Framework, agent: Agent | None, role: str,
               launch: mesos_pb2.Offer.Operation.LaunchGroup, pool: Resources) -> Resources:
        """Launch the group if it is valid and fits ``pool``; returns what is left of it."""
        tasks = list(launch.task_group.tasks)
        error, resources = self._error(framework, agent, role, launch, pool)
        if error is None:
            run = internal_pb2.MasterMessage()
            run.run_task_group.framework_info.CopyFrom(framework.info)
            size = run.ByteSize() + launch.ByteSize()
            if size > self.max_message:
                error = (f"The task group and its FrameworkInfo are {size} bytes; the agent "
                         f"link carries {self.max_message} at most")
        if error is not None or agent is None:
            for task in tasks:
                self.ends.report(framework, task.task_id.value, task.agent_id.value,
                                 mesos_pb2.TASK_ERROR, Status.REASON_TASK_GROUP_INVALID,
                                 error or "invalid task group")
            return pool
        executor = executor_as_launched(launch.executor, framework.id, role)
        key = (agent.id, framework.id, executor.executor_id.value)
        if not self.executors.knows(key):
            self.executors.add(Executor(executor, agent.id, role,
                                        Resources.from_proto(launch.executor.resources)))
        run.run_task_group.executor_info.CopyFrom(executor)
        group = run.run_task_group.task_group
        for task in tasks:
            info = group.tasks.add()
            info.CopyFrom(task)
            for resource in info.resources:
                resource.allocation_info.role = role
            # The master's record names the group's executor, as Mesos's Task.executor_id.
            record_info = mesos_pb2.TaskInfo()
            record_info.CopyFrom(info)
            record_info.executor.CopyFrom(executor)
            self.book.add_task(framework, agent, Task(
                record_info, framework.id, agent.id, role, Resources.from_proto(task.resources),
                user=framework.info.user))
            self.effects.count("master/tasks_launched")
        self.effects.to_agent(agent, run)
        return pool - resources

    def _error(self, framework: Framework, agent: Agent | None, role: str,
               launch: mesos_pb2.Offer.Operation.LaunchGroup, pool: Resources
               ) -> tuple[str | None, Resources]:
        """Why the group may not launch (None: it may), and the resources it takes."""
        executor = launch.executor
        error = _executor_error(executor, framework.id)
        if error is not None:
            return error, Resources()
        if agent is None:
            return "Task group uses an unknown agent", Resources()
        key = (agent.id, framework.id, executor.executor_id.value)
        error = self.executors.launch_error(key, executor_as_launched(executor, framework.id,
                                                                      role))
        if error is not None:
            return error, Resources()
        tasks = launch.task_group.tasks
        if not tasks:
            return "Task group is empty", Resources()
        seen: set[str] = set()
        total = Resources()
        try:
            if not self.executors.knows(key):
                total = total + Resources.from_proto(executor.resources)
            for task in tasks:
                error = self._task_error(framework, agent, task, seen)
                if error is not None:
                    return f"Task '{task.task_id.value}' is invalid: {error}", Resources()
                total = total + Resources.from_proto(task.resources)
        except BadRequest as exc:
            return f"Task group has invalid resources: {exc}", Resources()
        if not pool.contains(total):
            return (f"Task group uses more resources {total.text()} than available "
                    f"{pool.text()}"), Resources()
        return None, total

    def _task_error(self, framework: Framework, agent: Agent, task: mesos_pb2.TaskInfo,
                    seen: set[str]) -> str | None:
        task_id = task.task_id.value
        problem = id_error(task_id)
        if problem is not None:
            return f"Task ID is invalid: {problem}"
        if task_id in seen:
            return "Task has duplicate ID in its group"
        seen.add(task_id)
        existing = framework.tasks.get(task_id)
        if existing is not None and not existing.terminal:
            return "Task has duplicate ID"
        if task.agent_id.value != agent.id:
            return f"Task uses invalid agent: {task.agent_id.value}"
        if task.HasField("executor"):
            return "'TaskInfo.executor' must not be set for a task of a task group"
        if not task.HasField("command"):
            return "a task of a task group needs a CommandInfo"
        if task.HasField("container") and task.container.type != mesos_pb2.ContainerInfo.MESOS:
            return "a task of a task group runs in a MESOS container only"
        policies = [label.value for label in task.labels.labels
                    if label.key == GROUP_FAILURE_LABEL]
        if any(policy not in GROUP_FAILURE_POLICIES for policy in policies):
            return (f"label '{GROUP_FAILURE_LABEL}' must be one of "
                    f"{', '.join(GROUP_FAILURE_POLICIES)}")
        error = checks_error(task)
        if error is not None:
            return error
        if not Resources.from_proto(task.resources):
            return "Task uses no resources"
        return None


def _executor_error(executor: mesos_pb2.ExecutorInfo, framework_id: str) -> str | None:
    if executor.type != ExecutorInfo.DEFAULT:
        return "The executor of a task group must be of type DEFAULT"
    if executor.HasField("command"):
        return "'ExecutorInfo.command' must not be set for a DEFAULT executor"
    problem = id_error(executor.executor_id.value)
    if problem is not None:
        return f"Executor ID '{executor.executor_id.value}' is invalid: {problem}"
    if executor.HasField("framework_id") and executor.framework_id.value != framework_id:
        return "ExecutorInfo has an invalid FrameworkID"
    if executor.HasField("container") and executor.container.type != \
            mesos_pb2.ContainerInfo.MESOS:
        return "The executor of a task group runs in a MESOS container only"
    if executor.name.startswith(COMMAND_EXECUTOR_PREFIX):
        # The mark of the agent's own command executors (agent_runtime.executor_kind).
        return f"ExecutorInfo.name must not start with '{COMMAND_EXECUTOR_PREFIX}'"
    return None


__all__ = ["TaskGroups"]
