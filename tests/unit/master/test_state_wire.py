"""GET_STATE and GET_TASKS spliced from each task's kept encodings (master/state_wire.py) say
exactly what encoding the whole message says, in protobuf and in JSON, for running, finished,
completed and unreachable tasks; a task's encodings are made again when it changes, and the
unreachable one never passes for the live one. No processes: a Master object."""

from __future__ import annotations

import asyncio
import json

from agent_runtime.codec import jsonpb
from agent_runtime.http_util import JSON, PROTOBUF
from agent_runtime.master import operator_state, state_wire
from agent_runtime.master.config import MasterConfig
from agent_runtime.master.lifecycle import FrameworkState
from agent_runtime.master.master import Master
from agent_runtime.master.model import Agent, Framework, Task
from agent_runtime.proto import internal_pb2, master_pb2, mesos_pb2
from agent_runtime.resources import parse

Response = master_pb2.Response


def _task(master: Master, framework: Framework, task_id: str, *states: int) -> Task:
    info = mesos_pb2.TaskInfo(name=f"name-{task_id}")
    info.task_id.value = task_id
    info.labels.labels.add(key="k", value="ünïcode \"quoted\"")
    task = Task(info, framework.id, "S1", "*", parse("cpus:0.5;mem:32"), user="u")
    for n, state in enumerate(states):
        task.transition(state)  # type: ignore[arg-type]
        task.statuses.append(mesos_pb2.TaskStatus(state=state, timestamp=float(n),  # type: ignore[arg-type]
                                                  uuid=bytes([n]) * 16))
    master.book.add_task(framework, master.book.agents["S1"], task)
    return task


def _cluster() -> tuple[Master, Framework]:
    master = Master(MasterConfig(), clock=lambda: 1000.0)
    info = mesos_pb2.AgentInfo(hostname="h", port=5051)
    info.id.value = "S1"
    outbox: asyncio.Queue[internal_pb2.MasterMessage | None] = asyncio.Queue()
    master.book.agents["S1"] = Agent("S1", info, "slave(1)@127.0.0.1:5051",
                                     parse("cpus:4;mem:1024"), registered_time=1.0,
                                     outbox=outbox)
    framework = Framework("F1", mesos_pb2.FrameworkInfo(user="u", name="f"),
                          registered_time=2.0, state=FrameworkState.ACTIVE)
    master.book.frameworks["F1"] = framework
    return master, framework


def _whole(master: Master, kind: str) -> Response:
    if kind == "get_state":
        return Response(type=Response.GET_STATE, get_state=operator_state.get_state(master))
    return Response(type=Response.GET_TASKS, get_tasks=operator_state.get_tasks(master))


def _check(master: Master) -> None:
    for kind, splice in (("get_state", state_wire.get_state), ("get_tasks", state_wire.get_tasks)):
        whole = _whole(master, kind)
        assert splice(master, PROTOBUF) == whole.SerializeToString(deterministic=True)
        assert json.loads(splice(master, JSON)) == json.loads(jsonpb.dumps(whole))


def test_spliced_answers_equal_the_whole_message() -> None:
    master, framework = _cluster()
    _check(master)  # no task at all: the lists are left out, the parts are there
    running = _task(master, framework, "running", mesos_pb2.TASK_STARTING, mesos_pb2.TASK_RUNNING)
    _task(master, framework, "staging")
    finished = _task(master, framework, "finished", mesos_pb2.TASK_RUNNING,
                     mesos_pb2.TASK_FINISHED)
    _check(master)
    master.book.forget_task(finished)  # now among the framework's completed tasks
    _check(master)
    running.unreachable_time = 900.0
    _check(master)
    state = Response()
    state.ParseFromString(state_wire.get_state(master, PROTOBUF))
    (unreachable,) = state.get_state.get_tasks.unreachable_tasks
    assert unreachable.state == mesos_pb2.TASK_UNREACHABLE
    running.unreachable_time = None  # back: listed live again, as TASK_RUNNING
    state.ParseFromString(state_wire.get_state(master, PROTOBUF))
    assert [t.state for t in state.get_state.get_tasks.tasks] == [
        mesos_pb2.TASK_RUNNING, mesos_pb2.TASK_STAGING]
    _check(master)


def test_a_task_is_encoded_again_only_when_it_changes() -> None:
    master, framework = _cluster()
    task = _task(master, framework, "t", mesos_pb2.TASK_RUNNING)
    first = state_wire.task_wire(task, PROTOBUF)
    assert state_wire.task_wire(task, PROTOBUF) is first
    task.transition(mesos_pb2.TASK_FAILED)
    task.statuses.append(mesos_pb2.TaskStatus(state=mesos_pb2.TASK_FAILED, uuid=b"x" * 16))
    again = mesos_pb2.Task()
    again.ParseFromString(state_wire.task_wire(task, PROTOBUF))
    assert again.state == mesos_pb2.TASK_FAILED and len(again.statuses) == 2
    assert json.loads(state_wire.task_wire(task, JSON))["state"] == "TASK_FAILED"


def _shapes(framework: Framework) -> list[Task]:
    """Tasks with every part a task's JSON shows, and without each."""
    bare = mesos_pb2.TaskInfo()  # no name, no resources, no statuses, no user
    bare.task_id.value = "bare"
    full = mesos_pb2.TaskInfo(name="full")
    full.task_id.value = "full"
    full.executor.executor_id.value = "custom"
    full.labels.labels.add(key="k", value="v")
    full.discovery.visibility = mesos_pb2.DiscoveryInfo.FRAMEWORK
    full.discovery.name = "d"
    full.container.type = mesos_pb2.ContainerInfo.MESOS
    full.health_check.type = mesos_pb2.HealthCheck.COMMAND
    full.health_check.command.value = "true"
    full.kill_policy.grace_period.nanoseconds = 5
    tasks = [Task(bare, framework.id, "S1", "*", parse("")),
             Task(full, framework.id, "S1", "web",
                  parse("cpus(web):1;mem:64;ports:[31000-31002];disk(web):10"), user="u")]
    status = mesos_pb2.TaskStatus(state=mesos_pb2.TASK_RUNNING, timestamp=1.5, uuid=b"u" * 16,
                                  source=mesos_pb2.TaskStatus.SOURCE_EXECUTOR, healthy=True)
    status.task_id.value = "full"
    status.agent_id.value = "S1"
    status.labels.labels.add(key="a", value="b")
    tasks[1].transition(mesos_pb2.TASK_RUNNING)
    tasks[1].statuses += [mesos_pb2.TaskStatus(state=mesos_pb2.TASK_STARTING), status]
    unreachable = Task(full, framework.id, "S1", "web", parse("cpus(web):1"), user="u")
    unreachable.unreachable_time = 5.0
    return [*tasks, unreachable]


def test_a_task_json_written_directly_equals_the_message_converted() -> None:
    _, framework = _cluster()
    for task in _shapes(framework):
        expected = jsonpb.to_dict(state_wire._task_message(task))
        written = json.loads(state_wire.task_v1_json(task))
        assert written == expected
        assert list(written) == list(expected)  # the same order of keys, too
        for name in ("resources", "statuses"):
            assert [list(e) for e in written.get(name, [])] == \
                [list(e) for e in expected.get(name, [])]
