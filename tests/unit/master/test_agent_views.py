"""The agents' entries kept between state requests (master/agent_views.py) say exactly what
rendering each agent anew says, in /master/state, /metrics/snapshot and GET_STATE (protobuf and
JSON), for agents with tasks, a custom executor, reservations and offers, and go on saying it
after a task's update, an offer, a reservation, an agent's removal and a framework's teardown.
No processes: a Master object and its helpers."""

from __future__ import annotations

import asyncio
import json

from agent_runtime.codec import jsonpb
from agent_runtime.http_util import JSON, PROTOBUF
from agent_runtime.master import agent_views, operator_state, state_json, state_wire
from agent_runtime.master.config import MasterConfig
from agent_runtime.master.master import Master
from agent_runtime.master.model import Framework, Offer
from agent_runtime.proto import internal_pb2, master_pb2, mesos_pb2
from agent_runtime.resources import Resources, parse

Response = master_pb2.Response


def _resources(text: str, role: str | None = None) -> list[mesos_pb2.Resource]:
    return parse(text).to_proto(allocation_role=role)


def _register(master: Master, index: int, frameworks: list[mesos_pb2.FrameworkInfo]) -> str:
    """An agent re-registering after a failover: reserved resources, a command task of each
    framework, and (on even agents) a custom executor with a task of its own."""
    register = internal_pb2.RegisterAgent(version="1.11.0", pid=f"slave(1)@10.0.0.{index}:5051")
    info = register.agent_info
    info.hostname, info.port = f"agent-{index}", 5051
    info.id.value = f"S{index}"
    info.resources.extend(_resources("cpus:8;mem:4096;ports:[31000-32000]"))
    info.resources.extend(_resources("cpus(web):2;disk(web):100"))
    info.attributes.add(name="rack", type=mesos_pb2.Value.TEXT).text.value = f"r{index % 2}"
    register.capabilities.add(type=mesos_pb2.AgentInfo.Capability.MULTI_ROLE)
    for n, framework in enumerate(frameworks):
        state = register.executors.add()
        state.framework_info.CopyFrom(framework)
        if index % 2 == 0 and n == 0:
            executor = state.executor_info
            executor.executor_id.value = f"custom-{index}"
            executor.framework_id.CopyFrom(framework.id)
            executor.command.value = "run-executor"
            executor.resources.extend(_resources("cpus:0.5;mem:64", "*"))
        task = state.tasks.add(name=f"t{index}-{n}", state=mesos_pb2.TASK_RUNNING)
        task.task_id.value = f"task-{index}-{n}"
        task.framework_id.CopyFrom(framework.id)
        task.agent_id.value = info.id.value
        task.resources.extend(_resources("cpus:0.25;mem:32;ports:[31000-31001]", "*"))
        task.statuses.add(state=mesos_pb2.TASK_RUNNING, timestamp=float(index),
                          uuid=bytes([index, n]) * 8).task_id.CopyFrom(task.task_id)
    outbox: asyncio.Queue[internal_pb2.MasterMessage | None] = asyncio.Queue()
    return master.agent_lifecycle.register(register, outbox).id


def _cluster() -> Master:
    master = Master(MasterConfig(), clock=lambda: 1000.0)
    frameworks = []
    for n in range(2):
        framework = mesos_pb2.FrameworkInfo(user="u", name=f"f{n}")
        framework.id.value = f"F{n}"
        frameworks.append(framework)
    for index in range(4):
        _register(master, index, frameworks)
    return master


def _slow_state(master: Master) -> Response:
    """GET_STATE as the whole message, each agent's entry made anew (used_on, offered_on)."""
    state = Response.GetState()
    state.get_tasks.CopyFrom(operator_state.get_tasks(master))
    state.get_executors.CopyFrom(operator_state.get_executors(master))
    state.get_frameworks.CopyFrom(operator_state.get_frameworks(master))
    for agent in master.book.agents.values():
        state.get_agents.agents.append(operator_state.agent_entry(master, agent))
    state.get_agents.recovered_agents.extend(master.book.recovered_agents.values())
    return Response(type=Response.GET_STATE, get_state=state)


def _summed_anew(master: Master, framework: Framework) -> Resources:
    """What a framework uses, as Mesos's totalUsedResources: live tasks and custom executors."""
    return Resources.sum([*(t.resources for t in framework.tasks.values() if not t.terminal),
                          *(e.resources for e in master.book.executors_of(framework.id))])


def _check(master: Master) -> None:
    for _ in range(2):  # made, then kept
        whole = _slow_state(master)
        assert state_wire.get_state(master, PROTOBUF) == whole.SerializeToString(
            deterministic=True)
        assert json.loads(state_wire.get_state(master, JSON)) == json.loads(jsonpb.dumps(whole))
        slaves = state_json.slaves_json(master)["slaves"]
        assert slaves == [state_json.agent_json(master, a) for a in master.book.agents.values()]
        used = Resources.sum(master.book.used_on(a) for a in master.book.agents)
        metrics = state_json.metrics_json(master)
        assert metrics["master/cpus_used"] == used.scalar("cpus")
        assert metrics["master/mem_used"] == used.scalar("mem")
        book = master.book
        for framework in book.frameworks.values():  # kept totals equal totals summed anew
            fresh = _summed_anew(master, framework)
            assert agent_views.framework_used(book, framework) == fresh
            assert state_json.framework_json(master, framework)["used_resources"] == fresh.flat()


async def test_kept_entries_equal_entries_made_anew_through_changes() -> None:
    master = _cluster()
    assert master.book.executors  # the custom executors count in what their agents use
    _check(master)

    framework = master.book.frameworks["F1"]
    task = framework.tasks["task-1-1"]
    task.transition(mesos_pb2.TASK_FINISHED)  # a task's update: its agent uses less
    task.statuses.append(mesos_pb2.TaskStatus(state=mesos_pb2.TASK_FINISHED, uuid=b"f" * 16))
    _check(master)

    proto = mesos_pb2.Offer(hostname="agent-2")  # an offer: its agent shows it offered
    proto.id.value, proto.framework_id.value, proto.agent_id.value = "O1", "F0", "S2"
    master.book.add_offer(Offer(proto, "F0", "S2", "*", parse("cpus:1;mem:128")))
    _check(master)

    agent = master.book.agents["S3"]  # a reservation: the agent's total is replaced
    agent.total = agent.total + parse("disk(web):50")
    _check(master)

    master.agent_lifecycle.remove("S0")  # removed: its tasks end, its executor is forgotten
    _check(master)

    master.framework_lifecycle.remove(master.book.frameworks["F0"])  # torn down: tasks killed
    _check(master)
    assert master.book.used_on("S3") == parse("cpus:0.25;mem:32;ports:[31000-31001]")


async def test_an_entry_is_made_again_only_when_its_agent_changes() -> None:
    master = _cluster()
    first = state_wire._agent_entries(master, PROTOBUF)
    again = state_wire._agent_entries(master, PROTOBUF)
    assert all(a is b for a, b in zip(first, again, strict=True))
    task = master.book.frameworks["F0"].tasks["task-2-0"]
    task.transition(mesos_pb2.TASK_FAILED)
    changed = state_wire._agent_entries(master, PROTOBUF)
    assert [a is b for a, b in zip(first, changed, strict=True)] == [True, True, False, True]


async def test_a_total_is_summed_again_only_when_its_bags_change() -> None:
    master = _cluster()
    book = master.book
    framework = book.frameworks["F0"]
    used, _ = agent_views.usage(book)
    again, _ = agent_views.usage(book)
    assert all(used[a] is again[a] for a in book.agents)
    total = agent_views.framework_used(book, framework)
    assert agent_views.framework_used(book, framework) is total
    task = framework.tasks["task-2-0"]
    task.transition(mesos_pb2.TASK_FAILED)  # its agent and its framework use less
    changed, _ = agent_views.usage(book)
    assert [used[a] is changed[a] for a in book.agents] == [True, True, False, True]
    assert changed["S2"] == book.used_on("S2") != used["S2"]
    assert agent_views.framework_used(book, framework) == _summed_anew(master, framework) != total


def test_a_rendering_by_value_is_shared_by_equal_resources_and_bounded() -> None:
    memo: dict[Resources, dict[str, object]] = {}
    made = agent_views.by_value(memo, parse("cpus:1;mem:32"), Resources.flat)
    assert made == parse("cpus:1;mem:32").flat()
    assert agent_views.by_value(memo, parse("mem:32;cpus:1"), Resources.flat) is made
    assert agent_views.by_value(memo, parse("cpus:2"), Resources.flat) == parse("cpus:2").flat()
    for n in range(agent_views.MEMO_SIZE + 1):
        agent_views.by_value(memo, parse(f"cpus:{n + 3}"), Resources.flat)
    assert 0 < len(memo) <= agent_views.MEMO_SIZE
