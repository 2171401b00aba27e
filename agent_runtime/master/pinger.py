"""Pings of every linked agent from one timer.

A sleeping task per agent costs a timer, a future and a task step per ping: at 10,000 agents
that was a third of the master's idle CPU. Here the links sit on a wheel of ``SLOTS`` slots
turned by one task: each turn (``interval / SLOTS``) pings the agents of one slot, so every
agent is pinged once per ``interval`` (Mesos's ``--agent_ping_timeout``) and the pings of a
large cluster are spread over the interval instead of coming in one burst. An agent that has
not answered ``max_missed`` pings in a row is handed to ``unreachable`` and leaves the wheel.

A link joins the slot turned last, so its first ping comes about one interval after it joined,
as with a timer of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from agent_runtime.master.model import Agent
from agent_runtime.proto import internal_pb2

SLOTS = 15
Outbox = asyncio.Queue[internal_pb2.MasterMessage | None]


@dataclass(slots=True)
class _Link:
    agent: Agent
    outbox: Outbox
    missed: int = 0


class Pinger:
    def __init__(self, interval: float, max_missed: int,
                 unreachable: Callable[[Agent, int], None]) -> None:
        self.interval = interval
        self.max_missed = max_missed
        self.unreachable = unreachable
        self._slots: list[dict[int, _Link]] = [{} for _ in range(SLOTS)]
        self._where: dict[int, int] = {}  # id(outbox) -> its slot
        self._turn = 0
        self._task: asyncio.Task[None] | None = None

    def add(self, agent: Agent, outbox: Outbox) -> None:
        """Ping ``agent`` on this link (its outbox) from now on."""
        agent.ping_seq = agent.pong_seq = 0
        slot = (self._turn - 1) % SLOTS
        self._slots[slot][id(outbox)] = _Link(agent, outbox)
        self._where[id(outbox)] = slot
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def remove(self, outbox: Outbox) -> None:
        slot = self._where.pop(id(outbox), None)
        if slot is not None:
            self._slots[slot].pop(id(outbox), None)

    def __len__(self) -> int:
        return len(self._where)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        step = self.interval / SLOTS
        due = loop.time()
        while True:
            # Turns are kept on a fixed schedule, so a slow turn does not stretch the interval.
            due += step
            await asyncio.sleep(max(0.0, due - loop.time()))
            self._ping(self._slots[self._turn])
            self._turn = (self._turn + 1) % SLOTS

    def _ping(self, slot: dict[int, _Link]) -> None:
        for link in list(slot.values()):
            agent = link.agent
            link.missed = link.missed + 1 if agent.pong_seq != agent.ping_seq else 0
            if link.missed >= self.max_missed:
                self.remove(link.outbox)
                self.unreachable(agent, link.missed)
                continue
            agent.ping_seq += 1
            link.outbox.put_nowait(internal_pb2.MasterMessage(ping=agent.ping_seq))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


__all__ = ["SLOTS", "Pinger"]
