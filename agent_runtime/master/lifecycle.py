"""The lifecycles of frameworks and agents in the master, as transition tables.

A framework::

    (new) --SUBSCRIBE--> ACTIVE --stream closed--> DISCONNECTED --failover_timeout--+
                          ^  |  ^                       |                           |
                          |  +--+ SUBSCRIBE (failover)  |                           |
                          +-------- SUBSCRIBE ----------+                           v
    an agent reports it (master failover):                                      COMPLETED
    (new) --> RECOVERED --SUBSCRIBE--> ACTIVE                                   (no way out)
    TEARDOWN: RECOVERED, ACTIVE or DISCONNECTED --> COMPLETED

    RECOVERED    -> ACTIVE | COMPLETED
    ACTIVE       -> ACTIVE (a new connection replaces the old) | DISCONNECTED | COMPLETED
    DISCONNECTED -> ACTIVE | COMPLETED
    COMPLETED    -> nothing

Mesos also has INACTIVE (connected but deactivated, DEACTIVATE_FRAMEWORK); this master has no
call that deactivates a connected framework, so it has no such state.

An agent::

    (new) --REGISTER--> REGISTERED --link down--> DISCONNECTED --down as long as the pings--+
                         ^  |  ^                       |                                    |
                         |  |  +--- re-register -------+                                    v
                         |  +------------- pings unanswered ----------------------> UNREACHABLE
                         +-------------------------- re-register ------------------------+
    removed for good: REGISTERED, DISCONNECTED or UNREACHABLE --> REMOVED (no way out)

    REGISTERED   -> REGISTERED (a new link replaces the old) | DISCONNECTED | UNREACHABLE
                    | REMOVED
    DISCONNECTED -> REGISTERED | UNREACHABLE | REMOVED
    UNREACHABLE  -> REGISTERED | REMOVED
    REMOVED      -> nothing

Task states are shared with the agent: see :mod:`agent_runtime.task_states`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TypeVar

from agent_runtime.task_states import IllegalTransition

__all__ = ["AGENT_TRANSITIONS", "FRAMEWORK_TRANSITIONS", "AgentState", "FrameworkState",
           "IllegalTransition", "move"]


class FrameworkState(enum.Enum):
    RECOVERED = "recovered"
    ACTIVE = "active"
    DISCONNECTED = "disconnected"
    COMPLETED = "completed"


class AgentState(enum.Enum):
    REGISTERED = "registered"
    DISCONNECTED = "disconnected"
    UNREACHABLE = "unreachable"
    REMOVED = "removed"


_F = FrameworkState
FRAMEWORK_TRANSITIONS: Mapping[FrameworkState, frozenset[FrameworkState]] = {
    _F.RECOVERED: frozenset({_F.ACTIVE, _F.COMPLETED}),
    _F.ACTIVE: frozenset({_F.ACTIVE, _F.DISCONNECTED, _F.COMPLETED}),
    _F.DISCONNECTED: frozenset({_F.ACTIVE, _F.COMPLETED}),
    _F.COMPLETED: frozenset(),
}

_A = AgentState
AGENT_TRANSITIONS: Mapping[AgentState, frozenset[AgentState]] = {
    _A.REGISTERED: frozenset({_A.REGISTERED, _A.DISCONNECTED, _A.UNREACHABLE, _A.REMOVED}),
    _A.DISCONNECTED: frozenset({_A.REGISTERED, _A.UNREACHABLE, _A.REMOVED}),
    _A.UNREACHABLE: frozenset({_A.REGISTERED, _A.REMOVED}),
    _A.REMOVED: frozenset(),
}

S = TypeVar("S", FrameworkState, AgentState)


def move(table: Mapping[S, frozenset[S]], current: S, new: S, what: str) -> S:
    """``new`` when the table allows ``current -> new``; IllegalTransition (a bug in the
    caller, never bad input) when it does not."""
    if new not in table[current]:
        raise IllegalTransition(f"{what}: illegal move {current.name} -> {new.name}")
    return new
