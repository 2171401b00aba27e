"""No message to an agent is lost to a link that is down: what the master sends while an
agent's link is down, or what was still queued on a link that broke, is held on the agent and
sent again once it registers on a new link.

A held message goes out again only while it still means something: a ``run_task`` (or task
group) only if its task is still live in the book (the agent's re-registration ends a task it
does not report, with a reason, before the held messages go), pings and registration answers
never. Kills, shutdowns, acknowledgements and framework messages always go: the agent answers
one about a task or executor it does not know as Mesos's does. The held messages are bounded;
past the bound the oldest go, each logged.

A kill or an executor shutdown handed to a link just as it broke may never have reached the
agent: those a link sent after the agent's last answered ping are held again too (``InFlight``).
"""

from __future__ import annotations

import asyncio
import logging

from agent_runtime.master.book import MasterBook
from agent_runtime.master.lifecycle import AgentState
from agent_runtime.master.model import Agent
from agent_runtime.proto import internal_pb2

log = logging.getLogger(__name__)
Message = internal_pb2.MasterMessage
MAX_HELD = 10_000
NEVER_AGAIN = frozenset({"registered", "error", "ping", None})


def hold(agent: Agent, message: Message) -> None:
    """Keep ``message`` for the agent's next link (its link is down now)."""
    if message.WhichOneof("kind") in NEVER_AGAIN:
        return
    agent.held.append(message)
    if len(agent.held) > MAX_HELD:
        lost = agent.held.pop(0)
        log.warning("agent %s: more than %d messages held while its link is down; the oldest "
                    "(%s) is dropped", agent.id, MAX_HELD, lost.WhichOneof("kind"))


def _live(book: MasterBook, framework_id: str, task_ids: list[str]) -> bool:
    framework = book.frameworks.get(framework_id)
    if framework is None:
        return False
    tasks = [framework.tasks.get(task_id) for task_id in task_ids]
    return any(task is not None and not task.terminal for task in tasks)


def due(book: MasterBook, message: Message) -> bool:
    """Whether a held message still means something now."""
    kind = message.WhichOneof("kind")
    if kind in NEVER_AGAIN:
        return False
    if kind == "run_task":
        run = message.run_task
        return _live(book, run.framework_info.id.value, [run.task.task_id.value])
    if kind == "run_task_group":
        group = message.run_task_group
        return _live(book, group.framework_info.id.value,
                     [task.task_id.value for task in group.task_group.tasks])
    return True


def release(book: MasterBook, agent: Agent) -> None:
    """Send what was held to the agent's new link (call once it is registered again)."""
    held, agent.held = agent.held, []
    sent = 0
    for message in held:
        if due(book, message):
            agent.outbox.put_nowait(message)
            sent += 1
    if held:
        log.info("agent %s: %d held messages sent again on its new link (%d no longer due)",
                 agent.id, sent, len(held) - sent)


def leftovers(outbox: asyncio.Queue[Message | None]) -> list[Message]:
    """What a broken link had not sent yet, in order."""
    out = []
    while not outbox.empty():
        message = outbox.get_nowait()
        if message is not None:
            out.append(message)
    return out


# Kinds sent again when their link breaks before the agent showed it got them: gRPC takes a
# message and cannot say whether it reached an agent that died or was cut off meanwhile. Sending
# one of these twice is harmless (an agent ignores a kill of a task that is over and a shutdown of
# an executor that is gone); a run_task is not one of them: delivered twice, it would launch twice.
CONFIRMED_BY_PONG = frozenset({"kill_task", "shutdown_executor"})


class InFlight:
    """What one link sent of ``CONFIRMED_BY_PONG``, until the agent answers a ping sent after
    it: the stream is ordered, so that pong shows the agent read everything before the ping."""

    def __init__(self) -> None:
        self._last_ping = 0
        self._sent: list[tuple[int, Message]] = []  # (the pong that confirms it, message)

    def sent(self, message: Message, pong_seq: int) -> None:
        """``message`` was handed to the link; ``pong_seq``: the last pong seen on it."""
        kind = message.WhichOneof("kind")
        if kind == "ping":
            self._last_ping = message.ping
        elif kind in CONFIRMED_BY_PONG:
            self._sent.append((self._last_ping + 1, message))
        if self._sent and self._sent[0][0] <= pong_seq:
            self._sent = [(need, m) for need, m in self._sent if need > pong_seq]

    def unconfirmed(self, pong_seq: int) -> list[Message]:
        return [message for need, message in self._sent if need > pong_seq]


def reroute(book: MasterBook, agent: Agent, messages: list[Message]) -> None:
    """Messages a broken link had not sent: to the agent's new link if it has one already,
    else held for the next."""
    for message in messages:
        if agent.connected:
            if due(book, message):
                agent.outbox.put_nowait(message)
        elif agent.state is not AgentState.REMOVED:
            hold(agent, message)
