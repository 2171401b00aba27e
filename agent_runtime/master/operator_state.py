"""The master's state as the v1 operator API's messages (GET_STATE and its parts, GET_ROLES,
GET_METRICS), built from the book; the SUBSCRIBE stream sends the same shapes."""

from __future__ import annotations

from agent_runtime.master import agent_views
from agent_runtime.master.master import Master
from agent_runtime.master.model import Agent, Framework, Task
from agent_runtime.master.state_json import metrics_json, roles_json
from agent_runtime.proto import master_pb2, mesos_pb2
from agent_runtime.resources import Resources

Response = master_pb2.Response
AgentEntry = Response.GetAgents.Agent
FrameworkEntry = Response.GetFrameworks.Framework


def _time(field: mesos_pb2.TimeInfo, seconds: float) -> None:
    field.nanoseconds = int(seconds * 1e9)


def task_proto(task: Task) -> mesos_pb2.Task:
    out = mesos_pb2.Task(name=task.info.name, state=task.state)
    out.task_id.value = task.task_id
    out.framework_id.value = task.framework_id
    if task.executor_id:
        out.executor_id.value = task.executor_id
    out.agent_id.value = task.agent_id
    out.resources.extend(task.resources.to_proto())
    out.statuses.extend(task.statuses)
    if task.statuses:
        out.status_update_state = task.statuses[-1].state
    for field in ("labels", "discovery", "container", "health_check", "kill_policy"):
        if task.info.HasField(field):
            getattr(out, field).CopyFrom(getattr(task.info, field))
    if task.user:
        out.user = task.user
    return out


def agent_entry(master: Master, agent: Agent, used: Resources | None = None,
                offered: Resources | None = None) -> AgentEntry:
    """``used`` and ``offered`` are summed here unless given (agent_views.usage sums all)."""
    out = AgentEntry(active=agent.active and master.maintenance.offered(agent),
                     version=agent.version or master.info.version, pid=agent.pid)
    out.agent_info.CopyFrom(agent.info)
    out.deactivated = agent.id in master.maintenance.deactivated
    _time(out.registered_time, agent.registered_time)
    if agent.reregistered_time is not None:
        _time(out.reregistered_time, agent.reregistered_time)
    out.total_resources.extend(agent.total.to_proto())
    used = master.book.used_on(agent.id) if used is None else used
    offered = master.book.offered_on(agent.id) if offered is None else offered
    out.allocated_resources.extend(used.to_proto())
    out.offered_resources.extend(offered.to_proto())
    for capability in agent.capabilities:
        out.capabilities.add(type=capability)
    drain = master.maintenance.drain_info(agent)
    if drain is not None:
        out.drain_info.CopyFrom(drain)
    return out


def get_agents(master: Master) -> Response.GetAgents:
    out = Response.GetAgents()
    used, offered = agent_views.usage(master.book)
    for agent in master.book.agents.values():
        out.agents.append(agent_entry(master, agent, used[agent.id], offered[agent.id]))
    out.recovered_agents.extend(master.book.recovered_agents.values())
    return out


def framework_entry(master: Master, framework: Framework) -> FrameworkEntry:
    out = FrameworkEntry(active=framework.active, connected=framework.connected,
                         recovered=framework.recovered)
    out.framework_info.CopyFrom(framework.info)
    out.inverse_offers.extend(master.maintenance.inverse.of_framework(framework.id))
    _time(out.registered_time, framework.registered_time)
    if framework.reregistered_time is not None:
        _time(out.reregistered_time, framework.reregistered_time)
    if framework.unregistered_time:
        _time(out.unregistered_time, framework.unregistered_time)
    used = agent_views.framework_used(master.book, framework)
    out.offers.extend(offer.proto for offer in framework.offers.values())
    offered = Resources.sum(offer.resources for offer in framework.offers.values())
    out.allocated_resources.extend(used.to_proto())
    out.offered_resources.extend(offered.to_proto())
    return out


def get_frameworks(master: Master) -> Response.GetFrameworks:
    out = Response.GetFrameworks()
    for framework in master.book.frameworks.values():
        out.frameworks.append(framework_entry(master, framework))
    for framework in master.book.completed_frameworks:
        out.completed_frameworks.append(framework_entry(master, framework))
    return out


def get_tasks(master: Master) -> Response.GetTasks:
    out = Response.GetTasks()
    for framework in [*master.book.frameworks.values(), *master.book.completed_frameworks]:
        for task in framework.tasks.values():
            if task.unreachable_time is not None:
                entry = task_proto(task)
                entry.state = mesos_pb2.TASK_UNREACHABLE
                out.unreachable_tasks.append(entry)
            elif task.terminal:
                out.completed_tasks.append(task_proto(task))
            else:
                out.tasks.append(task_proto(task))
        out.completed_tasks.extend(task_proto(t) for t in framework.completed_tasks)
    return out


def get_executors(master: Master) -> Response.GetExecutors:
    out = Response.GetExecutors()
    for executor in master.book.executors.values():
        entry = out.executors.add()
        entry.executor_info.CopyFrom(executor.info)
        entry.agent_id.value = executor.agent_id
    return out


def get_state(master: Master) -> Response.GetState:
    out = Response.GetState()
    out.get_tasks.CopyFrom(get_tasks(master))
    out.get_executors.CopyFrom(get_executors(master))
    out.get_frameworks.CopyFrom(get_frameworks(master))
    out.get_agents.CopyFrom(get_agents(master))
    return out


def get_roles(master: Master) -> Response.GetRoles:
    out = Response.GetRoles()
    for role in roles_json(master)["roles"]:
        entry = out.roles.add(name=role["name"], weight=role["weight"])
        for framework_id in role["frameworks"]:
            entry.frameworks.add(value=framework_id)
        for name, value in role["resources"].items():
            if isinstance(value, int | float) and value:
                entry.resources.add(name=name, type=mesos_pb2.Value.SCALAR).scalar.value = value
    return out


def get_metrics(master: Master) -> Response.GetMetrics:
    out = Response.GetMetrics()
    for name, value in sorted(metrics_json(master).items()):
        out.metrics.add(name=name, value=value)
    return out


__all__ = ["agent_entry", "framework_entry", "get_agents", "get_executors", "get_frameworks",
           "get_metrics", "get_roles", "get_state", "get_tasks", "task_proto"]
