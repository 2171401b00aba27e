"""The master's answers to explicit reconciliation for tasks it does not know (Mesos's matrix in
``Master::reconcile``), the registry's admitted/unreachable agents behind them, and the
recovery window after a master failover. No processes: a Master object and a recording stream.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from aiohttp import web

from agent_runtime.flags import Duration
from agent_runtime.master.config import MasterConfig
from agent_runtime.master.lifecycle import AgentState, FrameworkState
from agent_runtime.master.master import Master
from agent_runtime.master.model import Agent, Framework
from agent_runtime.master.registry import Registry
from agent_runtime.proto import internal_pb2, mesos_pb2, scheduler_pb2
from agent_runtime.resources import parse
from agent_runtime.streams import EventStream

Call = scheduler_pb2.Call
Capability = mesos_pb2.FrameworkInfo.Capability


class Recorder(EventStream):
    def __init__(self) -> None:
        super().__init__(web.StreamResponse(), "application/json", "stream")
        self.events: list[scheduler_pb2.Event] = []

    def send(self, event: Any) -> None:
        self.events.append(event)


def _framework(master: Master, partition_aware: bool = True) -> tuple[Framework, Recorder]:
    info = mesos_pb2.FrameworkInfo(user="root", name="reconciler")
    if partition_aware:
        info.capabilities.add(type=Capability.PARTITION_AWARE)
    framework = Framework("F1", info, registered_time=0.0, state=FrameworkState.ACTIVE)
    stream = Recorder()
    framework.stream = stream
    master.book.frameworks[framework.id] = framework
    return framework, stream


def _agent(master: Master, agent_id: str) -> Agent:
    info = mesos_pb2.AgentInfo(hostname="h")
    info.id.value = agent_id
    outbox: asyncio.Queue[internal_pb2.MasterMessage | None] = asyncio.Queue()
    agent = Agent(agent_id, info, "slave(1)@127.0.0.1:5051", parse("cpus:1"),
                  registered_time=0.0, outbox=outbox)
    master.book.agents[agent_id] = agent
    return agent


def _reconcile(master: Master, framework: Framework, stream: Recorder,
               task_id: str, agent_id: str = "") -> list[mesos_pb2.TaskStatus]:
    reconcile = Call.Reconcile()
    item = reconcile.tasks.add()
    item.task_id.value = task_id
    if agent_id:
        item.agent_id.value = agent_id
    before = len(stream.events)
    master.reconciler.reconcile(framework, reconcile)
    return [e.update.status for e in stream.events[before:]]


def test_unknown_task_by_what_the_master_knows_of_its_agent() -> None:
    master = Master(MasterConfig(), clock=lambda: 1000.0)
    framework, stream = _framework(master)
    _agent(master, "registered")
    gone_away = _agent(master, "partitioned")
    gone_away.state = AgentState.UNREACHABLE
    gone_away.unreachable_time = 900.0
    master.book.registry.unreachable["partitioned"] = 900.0
    master.book.registry.unreachable["long-gone"] = 500.0

    def answer(agent_id: str) -> tuple[int, int]:
        (status,) = _reconcile(master, framework, stream, "t", agent_id)
        assert status.source == mesos_pb2.TaskStatus.SOURCE_MASTER
        assert status.reason == mesos_pb2.TaskStatus.REASON_RECONCILIATION
        assert not status.uuid
        return status.state, status.unreachable_time.nanoseconds

    assert answer("registered") == (mesos_pb2.TASK_GONE, 0)
    assert answer("partitioned") == (mesos_pb2.TASK_UNREACHABLE, 900 * 10**9)
    # Known from the registry only (this master never saw it): still TASK_UNREACHABLE.
    assert answer("long-gone") == (mesos_pb2.TASK_UNREACHABLE, 500 * 10**9)
    assert answer("nobody") == (mesos_pb2.TASK_UNKNOWN, 0)
    assert answer("") == (mesos_pb2.TASK_UNKNOWN, 0)


def test_frameworks_that_are_not_partition_aware_get_task_lost() -> None:
    master = Master(MasterConfig(), clock=lambda: 1000.0)
    framework, stream = _framework(master, partition_aware=False)
    _agent(master, "registered")
    master.book.registry.unreachable["partitioned"] = 900.0
    for agent_id in ("registered", "partitioned", "nobody", ""):
        (status,) = _reconcile(master, framework, stream, "t", agent_id)
        assert status.state == mesos_pb2.TASK_LOST, agent_id


def test_no_answer_while_the_agent_may_still_reregister() -> None:
    master = Master(MasterConfig(), clock=lambda: 1000.0)
    framework, stream = _framework(master)
    _agent(master, "back")
    master.book.recovered_agents["away"] = mesos_pb2.AgentInfo(hostname="h")
    # The named agent is recovered but not back: no answer; the framework retries.
    assert _reconcile(master, framework, stream, "t", "away") == []
    # No agent named while any agent is recovered: the task may be there, no answer either.
    assert _reconcile(master, framework, stream, "t") == []
    # A registered agent is answered for as usual.
    (status,) = _reconcile(master, framework, stream, "t", "back")
    assert status.state == mesos_pb2.TASK_GONE
    # The same rule for KILL of an unknown task (it reconciles).
    kill = Call.Kill()
    kill.task_id.value = "t"
    kill.agent_id.value = "away"
    before = len(stream.events)
    master.launcher.kill(framework, kill)
    assert len(stream.events) == before


def test_registry_keeps_admitted_and_unreachable_agents(tmp_path: Any) -> None:
    registry = Registry(str(tmp_path))
    info = mesos_pb2.AgentInfo(hostname="h1", port=5051)
    info.id.value = "S1"
    registry.state.agents["S1"] = info
    registry.state.unreachable["S1"] = 12.5
    registry.save()
    again = Registry(str(tmp_path)).recover()
    assert again.agents == {"S1": info}
    assert again.unreachable == {"S1": 12.5}

    # A document written before agents were kept reads as no agents.
    with open(os.path.join(tmp_path, "registry.json"), "w", encoding="utf-8") as handle:
        json.dump({"version": 1, "weights": {"a": 2}}, handle)
    old = Registry(str(tmp_path)).recover()
    assert (old.agents, old.unreachable, old.weights) == ({}, {}, {"a": 2.0})


async def test_recovered_agents_become_unreachable_after_the_reregister_timeout(
        tmp_path: Any) -> None:
    previous = Registry(str(tmp_path))
    for agent_id in ("S1", "S2"):
        info = mesos_pb2.AgentInfo(hostname=agent_id)
        info.id.value = agent_id
        previous.state.agents[agent_id] = info
    previous.state.unreachable["S2"] = 5.0  # already unreachable: not waited for
    previous.save()

    config = MasterConfig(work_dir=str(tmp_path), agent_reregister_timeout=Duration(0.2))
    master = Master(config, clock=lambda: 1000.0)
    master.start()
    try:
        assert set(master.book.recovered_agents) == {"S1"}
        framework, stream = _framework(master)
        assert _reconcile(master, framework, stream, "t", "S1") == []
        (status,) = _reconcile(master, framework, stream, "t", "S2")
        assert status.state == mesos_pb2.TASK_UNREACHABLE

        await asyncio.sleep(0.5)
        assert master.book.recovered_agents == {}
        (status,) = _reconcile(master, framework, stream, "t", "S1")
        assert (status.state, status.unreachable_time.nanoseconds) == (
            mesos_pb2.TASK_UNREACHABLE, 1000 * 10**9)
        failures = [e.failure.agent_id.value for e in stream.events
                    if e.type == scheduler_pb2.Event.FAILURE]
        assert failures == ["S1"]
        # Written through: the next master knows S1 is unreachable without waiting.
        assert Registry(str(tmp_path)).recover().unreachable == {"S1": 1000.0, "S2": 5.0}
    finally:
        await master.stop()


async def test_a_recovered_agent_that_reregisters_is_answered_for_again(
        tmp_path: Any) -> None:
    previous = Registry(str(tmp_path))
    info = mesos_pb2.AgentInfo(hostname="h", port=5051)
    info.id.value = "S1"
    info.resources.extend(parse("cpus:1").to_proto())
    previous.state.agents["S1"] = info
    previous.save()

    master = Master(MasterConfig(work_dir=str(tmp_path)), clock=lambda: 1000.0)
    master.start()
    try:
        framework, stream = _framework(master)
        assert _reconcile(master, framework, stream, "t") == []
        register = internal_pb2.RegisterAgent(pid="slave(1)@127.0.0.1:5051")
        register.agent_info.CopyFrom(info)
        master.agent_lifecycle.register(register, asyncio.Queue())
        assert master.book.recovered_agents == {}
        (status,) = _reconcile(master, framework, stream, "t", "S1")
        assert status.state == mesos_pb2.TASK_GONE
        (status,) = _reconcile(master, framework, stream, "t")
        assert status.state == mesos_pb2.TASK_UNKNOWN
    finally:
        await master.stop()
