"""The agent's executor table: its frameworks, their executors, and those that ended.

Owned here and nowhere else: the agent, the supervisor and recovery look up and change it
through these methods, never through the dictionaries. An executor is in the table from its
creation (launched, or adopted by recovery) until its exit; a framework is in it while it has
an executor, and moves to the completed ones with its last executor (the 50 latest are kept,
as Mesos's ``/state`` shows them).
"""

from __future__ import annotations

import collections
from collections.abc import Iterator

from agent_runtime.agent.model import Executor, FrameworkRecord
from agent_runtime.proto import internal_pb2, mesos_pb2

MAX_COMPLETED_FRAMEWORKS = 50


class ExecutorTable:
    def __init__(self) -> None:
        self._frameworks: dict[str, FrameworkRecord] = {}
        self._completed: collections.deque[FrameworkRecord] = collections.deque(
            maxlen=MAX_COMPLETED_FRAMEWORKS)

    # Queries ---------------------------------------------------------------------------------
    def framework(self, framework_id: str) -> FrameworkRecord | None:
        return self._frameworks.get(framework_id)

    def frameworks(self) -> list[FrameworkRecord]:
        return list(self._frameworks.values())

    def completed_frameworks(self) -> list[FrameworkRecord]:
        return list(self._completed)

    def executor(self, framework_id: str, executor_id: str) -> Executor | None:
        framework = self._frameworks.get(framework_id)
        return framework.executors.get(executor_id) if framework else None

    def executors(self) -> Iterator[Executor]:
        """Every live executor, framework by framework."""
        for framework in self._frameworks.values():
            yield from framework.executors.values()

    def executors_of(self, framework_id: str) -> list[Executor]:
        framework = self._frameworks.get(framework_id)
        return list(framework.executors.values()) if framework else []

    def holding(self, framework_id: str, task_id: str) -> Executor | None:
        """The executor that has launched ``task_id`` (not one that only has it queued)."""
        for executor in self.executors_of(framework_id):
            if task_id in executor.launched:
                return executor
        return None

    def checkpointing(self, framework_id: str) -> bool:
        framework = self._frameworks.get(framework_id)
        return framework is not None and framework.info.checkpoint

    # Changes ---------------------------------------------------------------------------------
    def framework_for(self, info: mesos_pb2.FrameworkInfo) -> FrameworkRecord:
        """The framework's record, added if new; an existing one keeps its FrameworkInfo."""
        framework_id = info.id.value
        framework = self._frameworks.get(framework_id)
        if framework is None:
            framework = self._frameworks[framework_id] = FrameworkRecord(info)
        return framework

    def add(self, executor: Executor) -> None:
        """Enter an executor of a framework already in the table."""
        self._frameworks[executor.framework_id].executors[executor.id] = executor

    def remove(self, executor: Executor) -> FrameworkRecord | None:
        """An executor ended: it moves to its framework's completed executors. Returns the
        framework if that was its last executor (it moved to the completed frameworks)."""
        framework = self._frameworks.get(executor.framework_id)
        if framework is None:
            return None
        framework.executors.pop(executor.id, None)
        framework.completed_executors.append(executor)
        if framework.executors:
            return None
        del self._frameworks[framework.id]
        self._completed.append(framework)
        return framework

    # Registration ----------------------------------------------------------------------------
    def report(self, register: internal_pb2.RegisterAgent, agent_id: str) -> None:
        """Every live executor and its tasks, as a (re-)registration tells the master."""
        for framework in self._frameworks.values():
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
                    task.agent_id.value = agent_id
                    task.resources.extend(queued.resources)
