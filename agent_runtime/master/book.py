"""The master's data in one place: frameworks, agents, offers, tasks and custom executors.

:class:`MasterBook` holds the records and keeps the indexes between them, so that the questions
the master asks often are lookups, not scans: the offers of an agent (``offers_on``), the tasks
placed on an agent (``tasks_on``, through ``Agent.tasks``), the offers of a framework
(``Framework.offers``). It sends nothing, starts no timer and never talks to the allocator: the
helpers that change the cluster take the book and a :class:`~agent_runtime.master.effects.
MasterEffects` and do those through the latter.

Invariants kept here: an offer is in ``offers``, in its framework's ``offers`` and in
``offers_on(its agent)``, or in none of them; a task is in its framework's ``tasks`` and in its
agent's ``tasks`` until it is forgotten, and then in its framework's ``completed_tasks``.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping

from agent_runtime.master.config import RoleWhitelist
from agent_runtime.master.model import Agent, Executor, ExecutorKey, Framework, Offer, Task
from agent_runtime.master.registry import RegistryState
from agent_runtime.proto import mesos_pb2
from agent_runtime.resources import Resources


class MasterBook:
    def __init__(self, *, max_completed_frameworks: int = 50,
                 roles: RoleWhitelist | None = None) -> None:
        self.frameworks: dict[str, Framework] = {}
        self.completed_frameworks: collections.deque[Framework] = collections.deque(
            maxlen=max_completed_frameworks)
        self.agents: dict[str, Agent] = {}
        # Agents the registry admitted that have not re-registered with this master yet (Mesos's
        # `slaves.recovered`): reconciliation does not answer for them until they come back or
        # --agent_reregister_timeout after the registry was recovered makes them unreachable.
        self.recovered_agents: dict[str, mesos_pb2.AgentInfo] = {}
        self.offers: dict[str, Offer] = {}
        self._offers_by_agent: dict[str, dict[str, Offer]] = {}
        # Custom executors: read here, changed only through add_executor/pop_executor, which
        # keep them indexed by agent too (offers, re-registration and usage ask per agent).
        self.executors: dict[ExecutorKey, Executor] = {}
        self._executors_by_agent: dict[str, dict[ExecutorKey, Executor]] = {}
        # What the registry holds (weights, quota, reservations, admitted and unreachable
        # agents); the same object the Registry writes, replaced when it is recovered.
        self.registry = RegistryState()
        self.roles = roles or RoleWhitelist()

    # Frameworks ------------------------------------------------------------------------------
    def completed_framework(self, framework_id: str) -> Framework | None:
        return next((f for f in self.completed_frameworks if f.id == framework_id), None)

    def complete_framework(self, framework: Framework) -> None:
        """Move a framework from the live ones to the completed ones (its tasks stay with it)."""
        self.frameworks.pop(framework.id, None)
        self.completed_frameworks.append(framework)

    # Offers ----------------------------------------------------------------------------------
    def add_offer(self, offer: Offer) -> None:
        offer_id = offer.proto.id.value
        self.offers[offer_id] = offer
        self._offers_by_agent.setdefault(offer.agent_id, {})[offer_id] = offer
        framework = self.frameworks.get(offer.framework_id)
        if framework is not None:
            framework.offers[offer_id] = offer

    def pop_offer(self, offer_id: str) -> Offer | None:
        """Take an offer out of every index; its timer is the caller's to cancel."""
        offer = self.offers.pop(offer_id, None)
        if offer is None:
            return None
        on_agent = self._offers_by_agent.get(offer.agent_id)
        if on_agent is not None:
            on_agent.pop(offer_id, None)
            if not on_agent:
                del self._offers_by_agent[offer.agent_id]
        framework = self.frameworks.get(offer.framework_id)
        if framework is not None:
            framework.offers.pop(offer_id, None)
        return offer

    def offers_on(self, agent_id: str) -> list[Offer]:
        """The outstanding offers of an agent's resources, taken all at once (callers rescind
        them as they go)."""
        return list(self._offers_by_agent.get(agent_id, {}).values())

    def offered_by_agent(self) -> dict[str, Resources]:
        """``offered_on`` of every agent that has offers, at once."""
        return {agent_id: Resources.sum(o.resources for o in offers.values())
                for agent_id, offers in self._offers_by_agent.items()}

    def offered_on(self, agent_id: str) -> Resources:
        return Resources.sum(o.resources for o in self._offers_by_agent.get(agent_id, {}).values())

    # Tasks -----------------------------------------------------------------------------------
    def add_task(self, framework: Framework, agent: Agent, task: Task) -> None:
        framework.tasks[task.task_id] = task
        agent.tasks.setdefault(framework.id, set()).add(task.task_id)

    def tasks_on(self, agent: Agent) -> list[tuple[Framework, Task]]:
        """The tasks the master has placed on ``agent``, with their frameworks, taken all at
        once: callers end some of them as they go, which changes ``agent.tasks``."""
        found = []
        for framework_id, task_ids in list(agent.tasks.items()):
            framework = self.frameworks.get(framework_id)
            if framework is None:
                continue
            for task_id in sorted(task_ids):
                task = framework.tasks.get(task_id)
                if task is not None:
                    found.append((framework, task))
        return found

    def forget_task(self, task: Task) -> None:
        """The task's life in the master is over: keep it among its framework's completed."""
        agent = self.agents.get(task.agent_id)
        if agent is not None:
            agent.tasks.get(task.framework_id, set()).discard(task.task_id)
        owner = self.frameworks.get(task.framework_id) or self.completed_framework(
            task.framework_id)
        if owner is not None:
            owner.tasks.pop(task.task_id, None)
            owner.completed_tasks.append(task)

    def used_on(self, agent_id: str) -> Resources:
        """What live tasks and custom executors hold on an agent (offers not included)."""
        agent = self.agents.get(agent_id)
        tasks = [t.resources for _, t in self.tasks_on(agent) if not t.terminal] if agent else []
        return Resources.sum([*tasks, *(e.resources
                                        for e in self.executors_on(agent_id).values())])

    # Custom executors ------------------------------------------------------------------------
    def add_executor(self, key: ExecutorKey, executor: Executor) -> Executor:
        """Keep ``executor`` under ``key`` unless one is kept there already; the one kept."""
        kept = self.executors.setdefault(key, executor)
        self._executors_by_agent.setdefault(key[0], {})[key] = kept
        return kept

    def pop_executor(self, key: ExecutorKey) -> Executor | None:
        executor = self.executors.pop(key, None)
        on_agent = self._executors_by_agent.get(key[0])
        if on_agent is not None:
            on_agent.pop(key, None)
            if not on_agent:
                del self._executors_by_agent[key[0]]
        return executor

    def executors_on(self, agent_id: str) -> Mapping[ExecutorKey, Executor]:
        return self._executors_by_agent.get(agent_id, {})

    def executors_of(self, framework_id: str) -> list[Executor]:
        return [e for (_, fid, _), e in self.executors.items() if fid == framework_id]

    def frameworks_with_executors_on(self, agent_id: str) -> set[str]:
        return {fid for (_, fid, _) in self.executors_on(agent_id)}


__all__ = ["MasterBook"]
