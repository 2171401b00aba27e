"""Task reconciliation in the master: RECONCILE calls, implicit and explicit.

Owns what the master answers a framework asking after its tasks: the latest state of each task
it knows, and for a task it does not know, Mesos's table by what is known of the agent named
(``Reconciler.unknown_task_state``). Answers are status updates with source SOURCE_MASTER,
reason REASON_RECONCILIATION and no uuid (nothing for the framework to acknowledge).
"""

from __future__ import annotations

import logging

from agent_runtime.master.book import MasterBook
from agent_runtime.master.effects import MasterEffects, master_status
from agent_runtime.master.model import Framework
from agent_runtime.proto import mesos_pb2, scheduler_pb2
from agent_runtime.task_states import TaskState

log = logging.getLogger(__name__)
Status = mesos_pb2.TaskStatus


class Reconciler:
    """Answers RECONCILE calls from what the master knows of tasks and agents."""

    def __init__(self, book: MasterBook, effects: MasterEffects) -> None:
        self.book = book
        self.effects = effects

    def reconcile(self, framework: Framework, reconcile: scheduler_pb2.Call.Reconcile) -> None:
        if not reconcile.tasks:
            for task in framework.tasks.values():
                self._update(framework, task.task_id, task.agent_id,
                             task.reported_state(framework.partition_aware),
                             task.statuses[-1] if task.statuses else None,
                             unreachable_time=task.unreachable_time)
            return
        for item in reconcile.tasks:
            known = framework.tasks.get(item.task_id.value)
            if known is not None:
                self._update(framework, known.task_id, known.agent_id,
                             known.reported_state(framework.partition_aware),
                             known.statuses[-1] if known.statuses else None,
                             unreachable_time=known.unreachable_time)
                continue
            agent_id = item.agent_id.value if item.HasField("agent_id") else ""
            answer = self.unknown_task_state(agent_id)
            if answer is None:
                log.info("framework %s: not answering the reconciliation of task %s: %s not "
                         "re-registered yet", framework.id, item.task_id.value,
                         f"agent {agent_id} has" if agent_id else "some agents have")
                continue
            state, unreachable_time = answer
            if not framework.partition_aware:
                state = mesos_pb2.TASK_LOST
            self._update(framework, item.task_id.value, agent_id, state, None,
                         unreachable_time=unreachable_time)

    def unknown_task_state(self, agent_id: str) -> tuple[TaskState, float | None] | None:
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
        recovered = self.book.recovered_agents
        if (agent_id in recovered) if agent_id else bool(recovered):
            return None
        agent = self.book.agents.get(agent_id) if agent_id else None
        if agent is not None and agent.unreachable_time is None:
            return mesos_pb2.TASK_GONE, None
        unreachable = (agent.unreachable_time if agent is not None
                       else self.book.registry.unreachable.get(agent_id))
        if unreachable is not None:
            return mesos_pb2.TASK_UNREACHABLE, unreachable
        return mesos_pb2.TASK_UNKNOWN, None

    def _update(self, framework: Framework, task_id: str, agent_id: str, state: TaskState,
                last: mesos_pb2.TaskStatus | None, *,
                unreachable_time: float | None = None) -> None:
        self.effects.to_framework(framework, master_status(
            task_id, agent_id, state, Status.REASON_RECONCILIATION, now=self.effects.now(),
            last=last, unreachable_time=unreachable_time))


__all__ = ["Reconciler"]
