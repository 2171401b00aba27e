"""Group commit of registry writes (registrar.py) and the registry's per-agent JSON cache: many
registrations make one write, a failed write reaches every waiter, and what is written reads
back the same after agents are added, replaced and removed."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from agent_runtime.master.registrar import GroupCommit
from agent_runtime.master.registry import Registry
from agent_runtime.proto import mesos_pb2


async def test_commits_of_one_moment_share_one_write() -> None:
    writes: list[int] = []
    group = GroupCommit(lambda: writes.append(1))
    await asyncio.gather(*(group.commit() for _ in range(500)))
    assert len(writes) == 1
    await group.commit()  # a later commit is a later write, never an earlier one reused
    assert len(writes) == 2


async def test_a_failed_write_reaches_every_waiter_and_the_next_write_runs() -> None:
    outcomes = [OSError("disk full"), None]

    def write() -> None:
        failure = outcomes.pop(0)
        if failure is not None:
            raise failure

    group = GroupCommit(write)
    results = await asyncio.gather(*(group.commit() for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, OSError) for r in results)
    await group.commit()
    assert outcomes == []


async def test_saves_inside_deferred_are_only_remembered() -> None:
    writes: list[int] = []
    group = GroupCommit(lambda: writes.append(1))
    with group.deferred() as outer:
        with group.deferred() as inner:
            assert group.deferring
            group.request()
        assert inner.requested
    assert outer.requested and not group.deferring and writes == []
    with pytest.raises(AssertionError):
        group.request()  # outside deferred() a save is the caller's to make


def _agent(agent_id: str, hostname: str) -> mesos_pb2.AgentInfo:
    info = mesos_pb2.AgentInfo(hostname=hostname, port=5051)
    info.id.value = agent_id
    info.resources.add(name="cpus", type=mesos_pb2.Value.SCALAR).scalar.value = 4
    return info


def test_agents_written_from_the_cache_read_back_as_they_are(tmp_path: str) -> None:
    registry = Registry(str(tmp_path))
    for n in range(300):
        registry.state.agents[f"S{n}"] = _agent(f"S{n}", f"h{n}")
    registry.state.unreachable["S7"] = 12.5
    registry.save()
    registry.state.agents["S1"] = _agent("S1", "moved")  # replaced, as the master does
    del registry.state.agents["S2"]
    registry.save()
    with open(os.path.join(str(tmp_path), "registry.json"), "rb") as handle:
        document = json.loads(handle.read())  # still one plain JSON document
    assert document["version"] == 1 and len(document["agents"]) == 299
    back = Registry(str(tmp_path)).recover()
    assert back.agents == registry.state.agents
    assert back.agents["S1"].hostname == "moved" and "S2" not in back.agents
    assert back.unreachable == {"S7": 12.5}
