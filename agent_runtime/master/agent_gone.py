"""Agents an operator marks gone: MARK_AGENT_GONE, and DRAIN_AGENT with ``mark_gone`` once the
agent is drained.

As Mesos: the agent is written to the registry's ``gone`` first (a failed write changes
nothing); then its live tasks end TASK_GONE_BY_OPERATOR (TASK_LOST for frameworks that are not
partition-aware) with REASON_AGENT_REMOVED_BY_OPERATOR, the agent is removed as any removed
agent is (its link ends, frameworks hear FAILURE), and it may never register with that id again,
with this master or a later one: its registration is refused, and a refused agent stops trying.
"""

from __future__ import annotations

import logging

from agent_runtime.errors import BadRequest
from agent_runtime.master.agents import AgentLifecycle
from agent_runtime.master.book import MasterBook
from agent_runtime.master.effects import MasterEffects
from agent_runtime.master.maintenance import Maintenance
from agent_runtime.master.model import Timer
from agent_runtime.master.task_ends import TaskEnds
from agent_runtime.proto import internal_pb2, mesos_pb2, scheduler_pb2

log = logging.getLogger(__name__)
Status = mesos_pb2.TaskStatus


class AgentGone:
    def __init__(self, book: MasterBook, effects: MasterEffects, *, maintenance: Maintenance,
                 lifecycle: AgentLifecycle, ends: TaskEnds) -> None:
        self.book = book
        self.effects = effects
        self.maintenance = maintenance
        self.lifecycle = lifecycle
        self.ends = ends
        self._check: Timer | None = None
        lifecycle.refusal = self.refusal

    def refusal(self, agent_id: str) -> str | None:
        """Why an agent with this id may not register, or None."""
        if agent_id in self.book.registry.gone:
            return f"agent {agent_id} has been marked gone by an operator"
        return None

    def mark_gone(self, agent_id: str) -> None:
        agent = self.book.agents.get(agent_id)
        if agent is None:
            raise BadRequest(f"No agent found with ID '{agent_id}'")
        registry = self.book.registry
        before = (dict(registry.gone), dict(registry.agents), dict(registry.unreachable),
                  set(registry.deactivated), dict(registry.draining))
        registry.gone = {**registry.gone, agent_id: self.effects.now()}
        registry.agents = {k: v for k, v in registry.agents.items() if k != agent_id}
        registry.unreachable = {k: v for k, v in registry.unreachable.items() if k != agent_id}
        registry.deactivated = registry.deactivated - {agent_id}
        registry.draining = {k: v for k, v in registry.draining.items() if k != agent_id}
        try:
            self.effects.save_registry()
        except Exception:
            (registry.gone, registry.agents, registry.unreachable, registry.deactivated,
             registry.draining) = before
            raise
        log.warning("agent %s marked gone by an operator", agent_id)
        for framework, task in self.book.tasks_on(agent):
            if task.terminal:
                continue
            state = mesos_pb2.TASK_GONE_BY_OPERATOR if framework.partition_aware \
                else mesos_pb2.TASK_LOST
            self.ends.end(framework, task, state, Status.REASON_AGENT_REMOVED_BY_OPERATOR,
                          f"Agent {agent_id} was marked gone by an operator")
        self.maintenance.inverse.reset(agent_id)
        if agent.connected:  # before its link ends: what is still running there must stop
            shutdown = internal_pb2.MasterMessage()
            shutdown.shutdown.message = f"Agent {agent_id} was marked gone by an operator"
            agent.outbox.put_nowait(shutdown)
        self.lifecycle.remove(agent_id)

    # DRAIN_AGENT with mark_gone --------------------------------------------------------------
    def watch(self, sent: object) -> None:
        """Every message the master sends: a task's update may leave an agent drained, which
        a drain with ``mark_gone`` ends by marking it gone."""
        if isinstance(sent, scheduler_pb2.Event) and sent.type == scheduler_pb2.Event.UPDATE:
            self.check_soon()

    def check_soon(self) -> None:
        """Look for drained agents to mark gone soon (not inside a send or a call)."""
        if self._check is None and any(c.mark_gone for c in self.maintenance.draining.values()):
            self._check = self.effects.call_later(0, self._mark_drained)

    def _mark_drained(self) -> None:
        self._check = None
        for agent_id, config in list(self.maintenance.draining.items()):
            agent = self.book.agents.get(agent_id)
            if config.mark_gone and agent is not None and self.maintenance.drained(agent):
                try:
                    self.mark_gone(agent_id)
                except Exception as exc:  # the registry: tried again on the next update
                    log.error("cannot mark drained agent %s gone: %s", agent_id, exc)


__all__ = ["AgentGone"]
