"""What becomes of an agent's tasks when the agent changes, in the master.

Owns the task side of agent lifecycle events: tasks and custom executors adopted from an agent
that registers with tasks (after a master failover); tasks reported UNREACHABLE (or LOST) when
their agent is partitioned; tasks taken back, or ended GONE (or LOST), when it comes back; tasks
ended when an agent re-registers without them (DROPPED, GONE or LOST) or is removed. The master
says so with status updates of its own (``TaskEnds.report``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from agent_runtime.executor_kind import generated_for_command_task
from agent_runtime.master.allocator import Allocator
from agent_runtime.master.book import MasterBook
from agent_runtime.master.effects import MasterEffects
from agent_runtime.master.executors import CustomExecutors
from agent_runtime.master.lifecycle import FrameworkState
from agent_runtime.master.model import Agent, Framework, Task
from agent_runtime.master.task_ends import TaskEnds
from agent_runtime.proto import internal_pb2, mesos_pb2
from agent_runtime.resources import Resources
from agent_runtime.task_states import TERMINAL_STATES

Status = mesos_pb2.TaskStatus
# The Resources of the tasks agents report, by the bytes of their resource protos. A failover
# adopts every task of the cluster at once and tasks repeat a few shapes: converting each
# (validation, then merging) was ~35 us a task, a quarter of the master's CPU re-registering
# 10,000 agents with 100,000 tasks; a Resources is a value, never changed, so tasks share one.
_REPORTED: dict[tuple[bytes, ...], Resources] = {}
_REPORTED_MAX = 4096


def _reported_resources(protos: Sequence[mesos_pb2.Resource]) -> Resources:
    key = tuple(proto.SerializeToString() for proto in protos)
    resources = _REPORTED.get(key)
    if resources is None:
        resources = Resources.from_proto(protos)  # BadRequest for bad ones, as before
        if len(_REPORTED) >= _REPORTED_MAX:
            _REPORTED.clear()
        _REPORTED[key] = resources
    return resources


class AgentTasks:
    """The tasks of agents that register, go away, come back, re-register or are removed."""

    def __init__(self, book: MasterBook, effects: MasterEffects, allocator: Allocator, *,
                 executors: CustomExecutors, ends: TaskEnds) -> None:
        self.book = book
        self.effects = effects
        self.allocator = allocator
        self.executors = executors
        self.ends = ends

    def recover_executor(self, agent: Agent, state: internal_pb2.ExecutorState) -> None:
        """A re-registering agent reports what runs on it; adopt it (after a master restart)."""
        framework_id = state.framework_info.id.value
        framework = self.book.frameworks.get(framework_id)
        if framework is None:
            framework = Framework(framework_id, state.framework_info,
                                  registered_time=self.effects.now(),
                                  state=FrameworkState.RECOVERED)
            self.book.frameworks[framework_id] = framework
            self.allocator.add_framework(framework_id, framework.roles)
            self.allocator.deactivate_framework(framework_id)
        custom = state.HasField("executor_info") and not generated_for_command_task(
            state.executor_info)
        if custom:
            self.executors.adopt(agent, state.executor_info)
        for proto in state.tasks:
            if proto.task_id.value in framework.tasks:
                continue
            resources = _reported_resources(proto.resources)
            role = proto.resources[0].allocation_info.role if proto.resources else "*"
            info = mesos_pb2.TaskInfo(name=proto.name)
            info.task_id.CopyFrom(proto.task_id)
            info.agent_id.CopyFrom(proto.agent_id)
            info.resources.extend(proto.resources)
            if custom:
                info.executor.CopyFrom(state.executor_info)
            task = Task(info, framework_id, agent.id, role or "*", resources, state=proto.state,
                        statuses=list(proto.statuses), user=proto.user)
            self.book.add_task(framework, agent, task)
            if not task.terminal:
                self.allocator.allocate_resources(framework_id, task.role, agent.id, resources)

    def unreachable(self, agent: Agent, why: str) -> None:
        """Tell frameworks their tasks there are UNREACHABLE (PARTITION_AWARE) or LOST."""
        now = self.effects.now()
        for framework, task in self.book.tasks_on(agent):
            if task.terminal:
                continue
            task.unreachable_time = now
            self.ends.report(framework, task.task_id, agent.id,
                             task.reported_state(framework.partition_aware),
                             Status.REASON_AGENT_REMOVED, f"Agent {agent.id} is unreachable: {why}")

    def reachable(self, agent: Agent,
                  executors: Iterable[internal_pb2.ExecutorState]) -> None:
        """The agent is back: its tasks are what it says; those it lost are gone."""
        executors = list(executors)
        self.executors.sync(agent, executors)
        reported = {task.task_id.value: task for state in executors for task in state.tasks}
        for framework, task in self.book.tasks_on(agent):
            if task.unreachable_time is None:
                continue
            task.unreachable_time = None
            known = reported.get(task.task_id)
            if known is not None and known.state not in TERMINAL_STATES:
                if known.state != task.state:  # a task still queued there stays STAGING
                    task.transition(known.state)
                self.ends.report(framework, task.task_id, agent.id, known.state,
                                 Status.REASON_AGENT_REREGISTERED,
                                 f"Agent {agent.id} re-registered")
                continue
            state = mesos_pb2.TASK_GONE if framework.partition_aware else mesos_pb2.TASK_LOST
            self.ends.end(framework, task, state, Status.REASON_AGENT_REREGISTERED,
                          f"Agent {agent.id} re-registered without this task")

    def reregistered(self, agent: Agent,
                     executors: Iterable[internal_pb2.ExecutorState]) -> None:
        """Tasks the master placed on the agent that the agent does not report are gone (it
        restarted before it could keep them): say so, rather than leave them STAGING forever."""
        executors = list(executors)
        self.executors.sync(agent, executors)
        reported = {task.task_id.value for state in executors for task in state.tasks}
        for framework, task in self.book.tasks_on(agent):
            if task.task_id in reported or task.terminal:
                continue
            if framework.partition_aware:
                state = mesos_pb2.TASK_DROPPED if task.state == mesos_pb2.TASK_STAGING \
                    else mesos_pb2.TASK_GONE
            else:
                state = mesos_pb2.TASK_LOST
            self.ends.end(framework, task, state, Status.REASON_AGENT_RESTARTED,
                          f"Agent {agent.id} re-registered without this task")

    def removed(self, agent: Agent) -> None:
        """The agent is gone for good: its live tasks end GONE (or LOST); executors forgotten."""
        for framework, task in self.book.tasks_on(agent):
            if task.terminal:
                continue
            state = mesos_pb2.TASK_GONE if framework.partition_aware else mesos_pb2.TASK_LOST
            # No free: the allocator drops the whole agent, and its allocations with it.
            self.ends.end(framework, task, state, Status.REASON_AGENT_REMOVED, "Agent removed",
                          free=False)
        self.executors.forget_agent(agent.id)


__all__ = ["AgentTasks"]
