"""Start-up slots (agent/startups.py): at most N command executors start at once; a slot comes
back when its executor subscribes or ends, or after the hold, and only once."""

from __future__ import annotations

import asyncio

from agent_runtime.agent import startups
from agent_runtime.agent.model import Executor
from agent_runtime.executor_kind import ExecutorKind
from agent_runtime.proto import mesos_pb2


def _executor(name: str, kind: ExecutorKind = ExecutorKind.COMMAND,
              image: bool = False) -> Executor:
    info = mesos_pb2.ExecutorInfo()
    info.executor_id.value = name
    if image:
        info.container.type = mesos_pb2.ContainerInfo.MESOS
        info.container.mesos.image.type = mesos_pb2.Image.DOCKER
        info.container.mesos.image.docker.name = "busybox"
    return Executor("F-1", info, f"c-{name}", f"/sandbox/{name}", kind=kind)


def test_only_command_executors_without_an_image_take_slots() -> None:
    assert startups.takes_a_slot(_executor("a"))
    assert not startups.takes_a_slot(_executor("b", image=True))
    assert not startups.takes_a_slot(_executor("c", ExecutorKind.DOCKER))
    assert not startups.takes_a_slot(_executor("d", ExecutorKind.CUSTOM))


async def test_the_third_waits_until_one_of_two_gives_its_slot_back() -> None:
    slots = startups.StartupSlots(2, hold=30.0)
    first, second, third = (_executor(n) for n in "xyz")
    await slots.take(first)
    await slots.take(second)
    waiting = asyncio.create_task(slots.take(third))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    startups.give_back(first)
    startups.give_back(first)  # once only: a second call frees nothing more
    await asyncio.wait_for(waiting, 1)
    assert first.startup_done is None and third.startup_done is not None
    assert slots.all_taken  # still two held: second and third


async def test_a_slot_comes_back_after_the_hold_if_its_executor_never_subscribes() -> None:
    slots = startups.StartupSlots(1, hold=0.1)
    slow = _executor("slow")
    await slots.take(slow)
    nxt = _executor("next")
    await asyncio.wait_for(slots.take(nxt), 2)
    assert slow.startup_done is None
    startups.give_back(slow)  # late: nothing to give back, and no extra slot appears
    assert slots.all_taken
    startups.give_back(nxt)
    assert not slots.all_taken
