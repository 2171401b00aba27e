"""How a task's life in the master ends, and how the master tells of a state it decided.

One home for what launching, agent lifecycle events and teardown all do to tasks: give what a
task held back to the allocator (``free``), tell its framework of a state the master decided
(``report``, an update with source SOURCE_MASTER), and end a task its agent can no longer speak
for (``end``: transition, free, report, forget).
"""

from __future__ import annotations

from agent_runtime.master.allocator import Allocator
from agent_runtime.master.book import MasterBook
from agent_runtime.master.effects import MasterEffects, master_status
from agent_runtime.master.model import Framework, Task
from agent_runtime.task_states import Reason, TaskState


class TaskEnds:
    def __init__(self, book: MasterBook, effects: MasterEffects, allocator: Allocator) -> None:
        self.book = book
        self.effects = effects
        self.allocator = allocator

    def free(self, task: Task) -> None:
        """Give what a task held back to the allocator. As in Mesos, freed resources wait for
        the next batched allocation (``--allocation_interval``): a hundred tasks ending within
        one interval make one offer per agent, not a hundred."""
        self.allocator.recover(task.framework_id, task.role, task.agent_id, task.resources,
                               now=self.effects.now())

    def report(self, framework: Framework, task_id: str, agent_id: str, state: TaskState,
               reason: Reason, message: str) -> None:
        """Tell the framework of a task state the master decided (source SOURCE_MASTER)."""
        self.effects.to_framework(framework, master_status(
            task_id, agent_id, state, reason, message=message, now=self.effects.now()))

    def end(self, framework: Framework, task: Task, state: TaskState, reason: Reason,
            message: str, *, free: bool = True) -> None:
        """The master ends a task its agent can no longer speak for, and says so."""
        task.transition(state)
        if free:
            self.free(task)
        self.report(framework, task.task_id, task.agent_id, state, reason, message)
        self.book.forget_task(task)


__all__ = ["TaskEnds"]
