"""Start-up slots: how many command executors start at once.

A batch of command tasks (one ACCEPT of ten, say) used to fork all its executors at once. Each
executor then needs a few milliseconds of CPU to subscribe and start its task, and the kernel
shares the CPU evenly between all of them, so every task of the batch reached TASK_RUNNING near
the end of the batch. With a slot per core, executors start a few at a time and the next one
forks when one has subscribed: the same work in the same total time, but the first tasks run
first (a 10-task ACCEPT's median ACCEPT->TASK_RUNNING is what issue 16 targets).

A slot is given back when its executor subscribes, ends, fails to launch, or after ``hold``
seconds, so an executor that is slow to subscribe (a loaded host, a hung one that its
registration timeout will deal with) delays the others by that much at most.

Measured with ``bench/launch.py --batch 10`` on two cores (runs side by side, unlimited vs two
slots): the first task of a batch RUNNING after 30 ms instead of 58-76 ms, the median after
77-79 ms instead of 85-127 ms, tasks per second unchanged (the work is the same).

Only executors forked from the fork server take slots: custom executors, Docker and image
tasks wait on other things (an engine, an image) and would only be held back by them.
"""

from __future__ import annotations

import asyncio
import os

from agent_runtime.agent.model import Executor
from agent_runtime.executor_kind import ExecutorKind

# Long enough for an executor on an idle host (tens of milliseconds), short enough that on a
# loaded one (seconds to subscribe) launches still go at several a second per slot.
HOLD = 0.25


def default_slots() -> int:
    return max(2, os.cpu_count() or 2)


def takes_a_slot(executor: Executor) -> bool:
    """A command executor of a task without an image: its start is CPU alone."""
    if executor.kind is not ExecutorKind.COMMAND:
        return False
    container = executor.info.container
    return not (container.HasField("mesos") and container.mesos.HasField("image"))


class StartupSlots:
    def __init__(self, slots: int, hold: float = HOLD) -> None:
        self._free = asyncio.Semaphore(slots)
        self.hold = hold

    @property
    def all_taken(self) -> bool:
        return self._free.locked()

    async def take(self, executor: Executor) -> None:
        """Wait for a free slot and hold it for ``executor`` (see :func:`give_back`)."""
        await self._free.acquire()

        def done() -> None:
            if executor.startup_done is done:
                executor.startup_done = None
                timer.cancel()
                self._free.release()

        timer = asyncio.get_running_loop().call_later(self.hold, done)
        executor.startup_done = done


def give_back(executor: Executor) -> None:
    """The executor subscribed or ended: its slot, if it holds one, is free (idempotent)."""
    if executor.startup_done is not None:
        executor.startup_done()
