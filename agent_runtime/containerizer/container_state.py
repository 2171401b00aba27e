"""The states of a Mesos container, as a table (STYLE rule 4), kept by ``mesos.py``::

            launch                                   adopt (agent recovery)
              |                                          |
              v                                          v
        PROVISIONING --> PREPARING --------------> RUNNING
              |              |                          |
              |  (failure)   |  (failure, destroy)      |  destroy, limitation, exit
              +--------------+-----> DESTROYING <-------+
                                          |
                                          v  cleanup done
                                      TERMINATED

PROVISIONING: the image's rootfs is being made. PREPARING: the isolators prepare and the
executor is spawned. RUNNING: the executor runs and the isolators watch it. DESTROYING: it is
being killed or its resources released (``destroy`` and ``cleanup`` are idempotent: a second
call finds it DESTROYING and moves nothing). TERMINATED is final; the containerizer then forgets
the container.
"""

from __future__ import annotations

import enum

from agent_runtime.errors import RuntimeErrorBase


class ContainerState(enum.Enum):
    PROVISIONING = "PROVISIONING"
    PREPARING = "PREPARING"
    RUNNING = "RUNNING"
    DESTROYING = "DESTROYING"
    TERMINATED = "TERMINATED"


PROVISIONING = ContainerState.PROVISIONING
PREPARING = ContainerState.PREPARING
RUNNING = ContainerState.RUNNING
DESTROYING = ContainerState.DESTROYING
TERMINATED = ContainerState.TERMINATED

# Where a container may start: launched (PROVISIONING) or adopted at recovery (RUNNING).
INITIAL = frozenset({PROVISIONING, RUNNING})
TRANSITIONS: dict[ContainerState, frozenset[ContainerState]] = {
    PROVISIONING: frozenset({PREPARING, DESTROYING}),
    PREPARING: frozenset({RUNNING, DESTROYING}),
    RUNNING: frozenset({DESTROYING}),
    DESTROYING: frozenset({TERMINATED}),
    TERMINATED: frozenset(),
}


class IllegalTransition(RuntimeErrorBase):
    """A container was asked to move where its state machine does not go: a bug, not input."""


def transition(container_id: str, current: ContainerState | None,
               target: ContainerState) -> ContainerState:
    """``target`` if the table allows the move from ``current`` (None: a new container)."""
    allowed = INITIAL if current is None else TRANSITIONS[current]
    if target not in allowed:
        raise IllegalTransition(f"container {container_id}: illegal move from "
                                f"{current.value if current else 'nothing'} to {target.value}")
    return target
