"""The agent's state as the v1 operator API's messages: GET_STATE and its parts (tasks,
executors, frameworks), GET_CONTAINERS, GET_AGENT, GET_FLAGS, GET_METRICS, GET_VERSION.

Tasks are sorted as Mesos's agent sorts them: ``queued_tasks`` are sent to an executor that has
not subscribed yet, ``launched_tasks`` are live, ``terminated_tasks`` ended with an update not
yet acknowledged, ``completed_tasks`` ended and acknowledged. This agent has no tasks waiting
for an executor to be launched, so ``pending_tasks`` stays empty.
"""

from __future__ import annotations

import asyncio

from agent_runtime import __version__
from agent_runtime.agent import metrics, state_json
from agent_runtime.agent.agent import Agent
from agent_runtime.agent.model import Executor
from agent_runtime.agent.nested import NestedContainer
from agent_runtime.build_info import version_json
from agent_runtime.flags import as_strings
from agent_runtime.proto import agent_pb2, mesos_pb2
from agent_runtime.task_states import TERMINAL_STATES

Response = agent_pb2.Response


def _executors(agent: Agent) -> tuple[list[Executor], list[Executor]]:
    live: list[Executor] = []
    completed: list[Executor] = []
    for framework in agent.table.frameworks():
        live.extend(framework.executors.values())
        completed.extend(framework.completed_executors)
    for framework in agent.table.completed_frameworks():
        completed.extend(framework.completed_executors)
    return live, completed


def get_tasks(agent: Agent) -> Response.GetTasks:
    out = Response.GetTasks()
    live, completed = _executors(agent)
    for executor in [*live, *completed]:
        for queued in executor.queued.values():
            task = out.queued_tasks.add(name=queued.name, state=mesos_pb2.TASK_STAGING)
            task.task_id.CopyFrom(queued.task_id)
            task.framework_id.value = executor.framework_id
            task.executor_id.value = executor.id
            task.agent_id.value = agent.id
            task.resources.extend(queued.resources)
        for task in executor.launched.values():
            (out.terminated_tasks if task.state in TERMINAL_STATES else out.launched_tasks
             ).append(task)
        out.completed_tasks.extend(executor.completed)
    return out


def get_executors(agent: Agent) -> Response.GetExecutors:
    out = Response.GetExecutors()
    live, completed = _executors(agent)
    for executor in live:
        out.executors.add().executor_info.CopyFrom(executor.info)
    for executor in completed:
        out.completed_executors.add().executor_info.CopyFrom(executor.info)
    return out


def get_frameworks(agent: Agent) -> Response.GetFrameworks:
    out = Response.GetFrameworks()
    for framework in agent.table.frameworks():
        out.frameworks.add().framework_info.CopyFrom(framework.info)
    for framework in agent.table.completed_frameworks():
        out.completed_frameworks.add().framework_info.CopyFrom(framework.info)
    return out


def get_state(agent: Agent) -> Response.GetState:
    out = Response.GetState()
    out.get_tasks.CopyFrom(get_tasks(agent))
    out.get_executors.CopyFrom(get_executors(agent))
    out.get_frameworks.CopyFrom(get_frameworks(agent))
    return out


async def get_containers(agent: Agent, show_nested: bool,
                         nested: list[NestedContainer]) -> Response.GetContainers:
    """Every live executor's container with its status and usage (absent when it cannot be
    told, as Mesos leaves it out); with ``show_nested``, the sessions running in them too."""
    out = Response.GetContainers()
    executors = list(agent.table.executors())
    usages = await asyncio.gather(
        *(agent.containerizer.usage(e.container_id) for e in executors))
    for executor, usage in zip(executors, usages, strict=True):
        entry = out.containers.add(executor_name=executor.info.name)
        entry.framework_id.value = executor.framework_id
        entry.executor_id.value = executor.id
        entry.container_id.value = executor.container_id
        entry.container_status.CopyFrom(state_json.container_status(executor))
        if usage is not None:
            entry.resource_statistics.CopyFrom(state_json.with_allocation(usage, executor))
    if show_nested:
        for session in nested:
            entry = out.containers.add()
            entry.container_id.value = session.id
            entry.container_id.parent.value = session.parent
            entry.container_status.container_id.CopyFrom(entry.container_id)
    return out


def get_agent(agent: Agent) -> Response.GetAgent:
    out = Response.GetAgent()
    out.agent_info.CopyFrom(agent.info)
    return out


def get_flags(agent: Agent) -> Response.GetFlags:
    out = Response.GetFlags()
    for name, value in sorted(as_strings(agent.config).items()):
        out.flags.add(name=name, value=value)
    return out


def get_metrics(agent: Agent) -> Response.GetMetrics:
    out = Response.GetMetrics()
    for name, value in sorted(metrics.snapshot(agent).items()):
        out.metrics.add(name=name, value=value)
    return out


def get_version() -> Response.GetVersion:
    out = Response.GetVersion()
    info = version_json()
    out.version_info.version = __version__
    out.version_info.build_date = info["build_date"]
    out.version_info.build_time = info["build_time"]
    return out


__all__ = ["get_agent", "get_containers", "get_executors", "get_flags", "get_frameworks",
           "get_metrics", "get_state", "get_tasks", "get_version"]
