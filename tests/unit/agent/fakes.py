"""Fakes the agent's unit tests share: a containerizer that runs nothing, processes the test
ends by hand, an event stream that records, and an Agent built around them."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Collection, Sequence
from typing import Any

from aiohttp import web
from google.protobuf.message import Message

from agent_runtime.agent.agent import Agent
from agent_runtime.agent.config import AgentConfig
from agent_runtime.containerizer.containerizer import ContainerConfig
from agent_runtime.containerizer.isolator import Limitation
from agent_runtime.containerizer.launcher import Process
from agent_runtime.proto import executor_pb2, internal_pb2, mesos_pb2
from agent_runtime.resources import Resources
from agent_runtime.streams import EventStream

AGENT_ID = "A-S0"


def fake_process() -> Process:
    """A process whose exit the test sets (``process.exited.set_result(status)``)."""
    return Process(pid=os.getpid(), start_time=0.0,
                   exited=asyncio.get_running_loop().create_future())


class FakeContainerizer:
    """Records destroys and cleanups; launch hands out a process the test ends by hand."""

    def __init__(self) -> None:
        self.destroyed: list[tuple[str, float]] = []
        self.cleaned: list[str] = []

    def adopt(self, container_id: str, info: mesos_pb2.ExecutorInfo, pid: int,
              start_time: float) -> Process | None:
        return None

    async def recover(self, known: Collection[str]) -> None:
        pass

    async def launch(self, config: ContainerConfig) -> Process:
        return fake_process()

    async def destroy(self, container_id: str, process: Process, grace: float) -> None:
        self.destroyed.append((container_id, grace))

    async def cleanup(self, container_id: str) -> None:
        self.cleaned.append(container_id)

    async def usage(self, container_id: str) -> mesos_pb2.ResourceStatistics | None:
        return None

    def limitation(self, container_id: str) -> Limitation | None:
        return None

    async def prune_images(self, excluded: Sequence[str]) -> None:
        pass

    async def close(self) -> None:
        pass


class RecordingStream(EventStream):
    """An executor's subscription that keeps what it is sent."""

    def __init__(self) -> None:
        super().__init__(web.StreamResponse(), "application/x-protobuf", "s")
        self.events: list[executor_pb2.Event] = []

    def send(self, event: Message) -> None:
        assert isinstance(event, executor_pb2.Event)
        self.events.append(event)


def make_agent(work_dir: str, sent: list[internal_pb2.AgentMessage],
               containerizer: FakeContainerizer | None = None, **flags: Any) -> Agent:
    """A registered agent (id ``A-S0``) whose messages to the master land in ``sent``."""
    info = mesos_pb2.AgentInfo(hostname="h", port=5051)
    info.id.value = AGENT_ID
    agent = Agent(AgentConfig(work_dir=work_dir, **flags), info, Resources(),
                  containerizer or FakeContainerizer())
    agent.send_to_master = sent.append
    return agent


def framework_info(framework_id: str = "A-0000", *, checkpoint: bool = False
                   ) -> mesos_pb2.FrameworkInfo:
    info = mesos_pb2.FrameworkInfo(user="u", name="f", checkpoint=checkpoint)
    info.id.value = framework_id
    return info
