"""GET_STATE and GET_TASKS of the v1 operator API at 100,000 tasks, spliced from bytes.

Building a ``Response`` message of every task and encoding it whole costs seconds at that
size (the generic protobuf-to-JSON walk most of all). The tasks are nearly all of the answer
and most of them do not change between two requests, so each task keeps its own encodings
(``Task.wire``: the serialized ``mesos.v1.Task`` and its JSON, each made on first use) until
its state, its statuses or its reachability change, and the answer is joined from them:

- protobuf: a repeated message field is a run of (tag, length, bytes), so the ``GetTasks``
  message is the tasks' bytes each behind its tag and length, and ``GetAgents`` the agents'
  entries, kept on each agent in both media until it changes (agent_views.py); the small parts
  (executors, frameworks) are serialized as before and framed the same way;
- JSON: the tasks' and agents' JSON texts joined by commas inside the lists, the small parts
  through the usual converter (``jsonpb.to_dict``), all written by orjson.

The answer equals what encoding the whole message gives (the tests parse both and compare).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any, Literal

import orjson

from agent_runtime.codec.jsonpb import to_dict
from agent_runtime.http_util import PROTOBUF
from agent_runtime.master import agent_views, operator_state
from agent_runtime.master.master import Master
from agent_runtime.master.model import Agent, Task
from agent_runtime.proto import master_pb2, mesos_pb2
from agent_runtime.resources import Resources

Response = master_pb2.Response
_TASKS = Response.GetTasks.DESCRIPTOR.fields_by_name
_STATE = Response.GetState.DESCRIPTOR.fields_by_name
_RESPONSE = Response.DESCRIPTOR.fields_by_name
_AGENTS = Response.GetAgents.DESCRIPTOR.fields_by_name
# The task lists of GetTasks we fill, in field-number order (the order protobuf writes).
TASK_LISTS = tuple(sorted(("tasks", "unreachable_tasks", "completed_tasks"),
                          key=lambda name: _TASKS[name].number))


# Wire format ------------------------------------------------------------------------------------
def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _tag(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _framed(number: int, payload: bytes) -> bytes:
    """A length-delimited field: a message, present even when empty."""
    return _tag(number, 2) + _varint(len(payload)) + payload


# One task -------------------------------------------------------------------------------------
def _key(task: Task) -> object:
    # What the encodings depend on besides the task's TaskInfo, user and role (which never
    # change): the same key as state_json.task_json's.
    last = task.statuses[-1] if task.statuses else None
    return (task.state, len(task.statuses), id(last), task.unreachable_time)


def _task_message(task: Task) -> mesos_pb2.Task:
    message = operator_state.task_proto(task)
    if task.unreachable_time is not None:  # listed among unreachable_tasks, as Mesos
        message.state = mesos_pb2.TASK_UNREACHABLE
    return message


_STATE_NAMES = {v.number: v.name for v in mesos_pb2.TaskState.DESCRIPTOR.values}
# The TaskInfo fields a task shows as they are, by field number in mesos.Task (the order
# to_dict writes): labels 11, discovery 12, container 13, (user 14), health_check 15,
# kill_policy 16.
_INFO_FIELDS: tuple[Literal["labels", "discovery", "container"], ...] = (
    "labels", "discovery", "container")
_INFO_FIELDS_AFTER_USER: tuple[Literal["health_check", "kill_policy"], ...] = (
    "health_check", "kill_policy")
# Each distinct Resources' ``resource`` list as to_dict writes it (writing them was a third of
# a task's JSON).
_RESOURCES_JSON: dict[Resources, list[dict[str, Any]]] = {}


def _resources_json(resources: Resources) -> list[dict[str, Any]]:
    return agent_views.by_value(_RESOURCES_JSON, resources,
                                lambda r: [to_dict(proto) for proto in r.to_proto()])


def task_v1_json(task: Task) -> bytes:
    """The JSON of ``_task_message(task)`` written from the task's own fields: to_dict of a
    message built first (its resources converted to protobuf and back out) was ~0.1 ms a task,
    seconds for the first GET_STATE after a failover at 100,000 tasks. Tested equal."""
    info = task.info
    out: dict[str, Any] = {"name": info.name, "task_id": {"value": task.task_id},
                           "framework_id": {"value": task.framework_id}}
    if task.executor_id:
        out["executor_id"] = {"value": task.executor_id}
    out["agent_id"] = {"value": task.agent_id}
    state = mesos_pb2.TASK_UNREACHABLE if task.unreachable_time is not None else task.state
    out["state"] = _STATE_NAMES.get(state, state)
    resources = _resources_json(task.resources)
    if resources:
        out["resources"] = resources
    if task.statuses:
        out["statuses"] = [to_dict(status) for status in task.statuses]
        last = task.statuses[-1].state
        out["status_update_state"] = _STATE_NAMES.get(last, last)
    for field in _INFO_FIELDS:
        if info.HasField(field):
            out[field] = to_dict(getattr(info, field))
    if task.user:
        out["user"] = task.user
    for after in _INFO_FIELDS_AFTER_USER:
        if info.HasField(after):
            out[after] = to_dict(getattr(info, after))
    return orjson.dumps(out)


def task_wire(task: Task, media: str) -> bytes:
    """The task's ``mesos.v1.Task`` as protobuf bytes or JSON text, kept until it changes."""
    key = _key(task)
    if task.wire is None or task.wire[0] != key:
        task.wire = (key, {})
    cached = task.wire[1]
    encoded = cached.get(media)
    if encoded is None:
        encoded = _task_message(task).SerializeToString() if media == PROTOBUF else \
            task_v1_json(task)
        cached[media] = encoded
    return encoded


def _task_lists(master: Master) -> dict[str, list[Task]]:
    lists: dict[str, list[Task]] = {name: [] for name in TASK_LISTS}
    book = master.book
    for framework in [*book.frameworks.values(), *book.completed_frameworks]:
        for task in framework.tasks.values():
            if task.unreachable_time is not None:
                lists["unreachable_tasks"].append(task)
            elif task.terminal:
                lists["completed_tasks"].append(task)
            else:
                lists["tasks"].append(task)
        lists["completed_tasks"].extend(framework.completed_tasks)
    return lists


# The answers ------------------------------------------------------------------------------------
def _tasks_protobuf(master: Master) -> bytes:
    chunks: list[bytes] = []
    for name, tasks in _task_lists(master).items():
        tag = _tag(_TASKS[name].number, 2)
        for task in tasks:
            encoded = task_wire(task, PROTOBUF)
            chunks += (tag, _varint(len(encoded)), encoded)
    return b"".join(chunks)


def _tasks_json(master: Master) -> Iterator[bytes]:
    yield b"{"
    first = True
    for name, tasks in _task_lists(master).items():
        if not tasks:  # as to_dict: an empty repeated field is left out
            continue
        yield (b"" if first else b",") + b'"' + name.encode() + b'":['
        yield b",".join(task_wire(task, "application/json") for task in tasks)
        yield b"]"
        first = False
    yield b"}"


def _agent_entry(master: Master, agent: Agent, used: Resources, offered: Resources,
                 media: str) -> bytes:
    entry = operator_state.agent_entry(master, agent, used, offered)
    return entry.SerializeToString() if media == PROTOBUF else orjson.dumps(to_dict(entry))


def _agent_entries(master: Master, media: str) -> list[bytes]:
    """Each agent's ``GetAgents.Agent`` in ``media``, kept on the agent (agent_views.py)."""
    used, offered = agent_views.usage(master.book)
    out = []
    for agent in master.book.agents.values():
        args = (master, agent, used[agent.id], offered[agent.id])
        out.append(agent_views.kept(agent, media, agent_views.key(*args),
                                    functools.partial(_agent_entry, *args, media)))
    return out


def _agents(master: Master, media: str) -> bytes:
    """The ``GetAgents`` message: the agents' kept entries and the recovered agents' info."""
    entries = _agent_entries(master, media)
    recovered = list(master.book.recovered_agents.values())
    if media == PROTOBUF:
        chunks: list[bytes] = []
        for number, encoded in ((_AGENTS["agents"].number, entries), (
                _AGENTS["recovered_agents"].number, [i.SerializeToString() for i in recovered])):
            tag = _tag(number, 2)
            for item in encoded:
                chunks += (tag, _varint(len(item)), item)
        return b"".join(chunks)
    lists = []  # as to_dict: an empty repeated field is left out
    if entries:
        lists.append(b'"agents":[' + b",".join(entries) + b"]")
    if recovered:
        lists.append(b'"recovered_agents":' + orjson.dumps([to_dict(i) for i in recovered]))
    return b"{" + b",".join(lists) + b"}"


# The parts of GetState other than the tasks and the agents, built as before (they are small).
_OTHER_PARTS: tuple[tuple[str, Callable[[Master], Any]], ...] = (
    ("get_executors", operator_state.get_executors),
    ("get_frameworks", operator_state.get_frameworks),
)


def get_state(master: Master, media: str) -> bytes:
    """The whole ``Response`` of GET_STATE, encoded in ``media``."""
    if media == PROTOBUF:
        state = [_framed(_STATE["get_tasks"].number, _tasks_protobuf(master))]
        for name, build in _OTHER_PARTS:
            state.append(_framed(_STATE[name].number, build(master).SerializeToString()))
        state.append(_framed(_STATE["get_agents"].number, _agents(master, media)))
        return (_tag(_RESPONSE["type"].number, 0) + _varint(Response.GET_STATE)
                + _framed(_RESPONSE["get_state"].number, b"".join(state)))
    parts = [b'{"type":"GET_STATE","get_state":{"get_tasks":', *_tasks_json(master)]
    for name, build in _OTHER_PARTS:
        parts.append(b',"' + name.encode() + b'":' + orjson.dumps(to_dict(build(master))))
    parts += (b',"get_agents":', _agents(master, media), b"}}")
    return b"".join(parts)


def get_tasks(master: Master, media: str) -> bytes:
    """The whole ``Response`` of GET_TASKS, encoded in ``media``."""
    if media == PROTOBUF:
        return (_tag(_RESPONSE["type"].number, 0) + _varint(Response.GET_TASKS)
                + _framed(_RESPONSE["get_tasks"].number, _tasks_protobuf(master)))
    return b"".join([b'{"type":"GET_TASKS","get_tasks":', *_tasks_json(master), b"}"])


# The calls answered here, by the operator API's call type.
SPLICED: dict[int, Callable[[Master, str], bytes]] = {
    master_pb2.Call.GET_STATE: get_state,
    master_pb2.Call.GET_TASKS: get_tasks,
}

__all__ = ["SPLICED", "get_state", "get_tasks", "task_wire"]
