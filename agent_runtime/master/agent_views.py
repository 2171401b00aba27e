"""The agents' entries of the state answers, kept on each agent until what they show changes.

At 10,000 agents the agent entries are, after the tasks, most of ``/master/state`` and of
GET_STATE: summing what each agent's tasks use (``MasterBook.used_on`` also scans every custom
executor, for each agent) and rendering the entry anew (a dict, or a ``GetAgents.Agent``
encoded in protobuf or through the generic protobuf-to-JSON walk) took seconds per request.
Here, as Mesos keeps ``Slave::usedResources`` instead of summing tasks per request:

- :func:`usage` sums what every agent uses and is offered in one pass over the book;
- :func:`kept` keeps an agent's renderings (``Agent.rendered``, one per kind) under a key of
  everything they show (:func:`key`: its record, those sums, and the operator's maintenance
  say about it), and makes one again only when the key differs.

A rendering is shared between requests: callers must not change it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from agent_runtime.master.book import MasterBook
from agent_runtime.master.master import Master
from agent_runtime.master.model import Agent
from agent_runtime.resources import Resources

T = TypeVar("T")
_NONE = Resources()  # shared: a Resources is never changed


def usage(book: MasterBook) -> tuple[dict[str, Resources], dict[str, Resources]]:
    """What each agent's live tasks and custom executors use, and what each has on offer
    (``used_on`` and ``offered_on`` of every agent, in one pass)."""
    used: dict[str, list[Resources]] = {}
    for agent in book.agents.values():
        bags = used[agent.id] = []
        for framework_id, task_ids in agent.tasks.items():
            framework = book.frameworks.get(framework_id)
            if framework is None:
                continue
            tasks = framework.tasks
            for task_id in task_ids:
                task = tasks.get(task_id)
                if task is not None and not task.terminal:
                    bags.append(task.resources)
    for executor in book.executors.values():
        if executor.agent_id in used:
            used[executor.agent_id].append(executor.resources)
    on_offer = book.offered_by_agent()
    offered = {agent_id: on_offer.get(agent_id, _NONE) for agent_id in book.agents}
    return {agent_id: Resources.sum(bags) for agent_id, bags in used.items()}, offered


def key(master: Master, agent: Agent, used: Resources, offered: Resources) -> object:
    """Everything an agent's entries show. The record's parts are replaced, never edited in
    place (``info`` on re-registration, ``total`` by reservations), so identity would do; the
    tuple comparison checks identity before equality anyway."""
    maintenance = master.maintenance
    drain = maintenance.drain_info(agent)
    return (agent.state, agent.info, agent.pid, agent.total, agent.version,
            agent.registered_time, agent.reregistered_time, tuple(agent.capabilities),
            used, offered, maintenance.offered(agent), agent.id in maintenance.deactivated,
            None if drain is None else drain.SerializeToString())


def kept(agent: Agent, kind: str, current: object, make: Callable[[], T]) -> T:
    """The agent's rendering of ``kind`` made under ``current``, made again if it changed."""
    held = agent.rendered.get(kind)
    if held is not None and held[0] == current:
        value: T = held[1]
        return value
    value = make()
    agent.rendered[kind] = (current, value)
    return value


__all__ = ["kept", "key", "usage"]
