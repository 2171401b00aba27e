"""One timer pings every linked agent once per interval (master/pinger.py): an agent that
answers stays, one that does not is handed over after --max_agent_ping_timeouts pings and
pinged no more, a removed link hears nothing. Real asyncio timers at a 0.2 s interval."""

from __future__ import annotations

import asyncio

from agent_runtime.master.model import Agent
from agent_runtime.master.pinger import Pinger
from agent_runtime.proto import internal_pb2, mesos_pb2
from agent_runtime.resources import parse

INTERVAL = 0.2
Outbox = asyncio.Queue[internal_pb2.MasterMessage | None]


def _agent(agent_id: str) -> tuple[Agent, Outbox]:
    info = mesos_pb2.AgentInfo(hostname="h")
    info.id.value = agent_id
    outbox: Outbox = asyncio.Queue()
    return Agent(agent_id, info, "slave(1)@127.0.0.1:5051", parse("cpus:1"),
                 registered_time=0.0, outbox=outbox), outbox


async def _answer(agent: Agent, outbox: Outbox, pings: list[int]) -> None:
    while True:
        message = await outbox.get()
        assert message is not None and message.WhichOneof("kind") == "ping"
        pings.append(message.ping)
        agent.pong_seq = message.ping


async def test_answering_agents_stay_silent_ones_are_handed_over() -> None:
    lost: list[tuple[str, int]] = []
    pinger = Pinger(INTERVAL, 3, lambda agent, missed: lost.append((agent.id, missed)))
    loop = asyncio.get_running_loop()
    alive, alive_box = _agent("alive")
    silent, silent_box = _agent("silent")
    gone, gone_box = _agent("gone")
    pings: list[int] = []
    answering = loop.create_task(_answer(alive, alive_box, pings))
    try:
        for agent, box in ((alive, alive_box), (silent, silent_box), (gone, gone_box)):
            pinger.add(agent, box)
        pinger.remove(gone_box)
        await asyncio.sleep(INTERVAL * 0.5)
        assert pings == []  # the first ping comes about one interval after joining
        await asyncio.sleep(INTERVAL * 5)
        # Once per interval, in order, and never handed over.
        assert pings == list(range(1, len(pings) + 1)) and 4 <= len(pings) <= 6
        assert lost == [("silent", 3)]  # 3 pings unanswered: the 4th turn hands it over
        assert silent.ping_seq == 3 and silent_box.qsize() == 3
        assert gone_box.empty() and len(pinger) == 1
    finally:
        answering.cancel()
        await pinger.close()
