"""The JSON shapes of the master's state endpoints (``/master/state`` and friends), as Mesos."""

from __future__ import annotations

from typing import Any

from agent_runtime import __version__
from agent_runtime.attributes import flat_json
from agent_runtime.build_info import version_json as version_json  # /version shares it
from agent_runtime.codec.jsonpb import to_dict
from agent_runtime.flags import as_strings
from agent_runtime.master import agent_views, task_query
from agent_runtime.master.master import Master
from agent_runtime.master.model import Agent, Executor, Framework, Offer, Task
from agent_runtime.proto import mesos_pb2
from agent_runtime.resources import Resources
from agent_runtime.task_states import TaskState


def task_json(task: Task) -> dict[str, Any]:
    """A task as Mesos's ``json(Task)``; shared, not copied: callers must not change it. Kept
    on the task until its state, its statuses or its reachability change (its TaskInfo, user
    and role never do)."""
    last = task.statuses[-1] if task.statuses else None
    key = (task.state, len(task.statuses), id(last), task.unreachable_time)
    if task.rendered is not None and task.rendered[0] == key:
        return task.rendered[1]
    out: dict[str, Any] = {
        "id": task.task_id,
        "name": task.info.name,
        "framework_id": task.framework_id,
        "executor_id": task.executor_id,
        "slave_id": task.agent_id,
        "state": mesos_pb2.TaskState.Name(task.state),
        "resources": task.resources.flat(),
        "role": task.role,
        "statuses": [_status_json(status) for status in task.statuses],
    }
    if task.user:
        out["user"] = task.user
    for field in ("labels", "discovery", "container", "health_check"):
        if task.info.HasField(field):
            out[field] = to_dict(getattr(task.info, field))
    task.rendered = (key, out)
    return out


def _status_json(status: mesos_pb2.TaskStatus) -> dict[str, Any]:
    """The fields of a status Mesos's state endpoints show, read directly (not through a whole
    ``to_dict`` of the status, three times slower)."""
    out: dict[str, Any] = {}
    if status.HasField("state"):
        out["state"] = mesos_pb2.TaskState.Name(status.state)
    if status.HasField("timestamp"):
        out["timestamp"] = status.timestamp
    for field in ("labels", "container_status"):
        if status.HasField(field):
            out[field] = to_dict(getattr(status, field))
    if status.HasField("healthy"):
        out["healthy"] = status.healthy
    return out


def offer_json(offer: Offer) -> dict[str, Any]:
    return {
        "id": offer.proto.id.value,
        "framework_id": offer.framework_id,
        "allocation_info": {"role": offer.role},
        "slave_id": offer.agent_id,
        "resources": offer.resources.flat(),
    }


def executor_json(executor: Executor) -> dict[str, Any]:
    """A custom executor as Mesos's ``json(ExecutorInfo)`` (``src/common/http.cpp``) plus the
    ``slave_id`` the master's framework entry adds."""
    info = executor.info
    out: dict[str, Any] = {
        "executor_id": executor.executor_id,
        "name": info.name,
        "framework_id": executor.framework_id,
        "command": to_dict(info.command),
        "resources": executor.resources.flat(),
    }
    if info.resources:
        out["role"] = executor.role
    if info.HasField("labels"):
        out["labels"] = to_dict(info.labels).get("labels", [])
    if info.HasField("type"):
        out["type"] = mesos_pb2.ExecutorInfo.Type.Name(info.type)
    out["slave_id"] = executor.agent_id
    return out


def framework_json(master: Master, framework: Framework) -> dict[str, Any]:
    info = framework.info
    executors = master.book.executors_of(framework.id)
    used = agent_views.framework_used(master.book, framework)
    offered = Resources.sum(o.resources for o in framework.offers.values())
    out: dict[str, Any] = {
        "id": framework.id,
        "name": info.name,
        "used_resources": used.flat(),
        "offered_resources": offered.flat(),
        "capabilities": [
            mesos_pb2.FrameworkInfo.Capability.Type.Name(c.type) for c in info.capabilities
        ],
        "hostname": info.hostname,
        "webui_url": info.webui_url,
        "active": framework.active,
        "connected": framework.connected,
        "recovered": framework.recovered,
        "user": info.user,
        "failover_timeout": info.failover_timeout,
        "checkpoint": info.checkpoint,
        "registered_time": framework.registered_time,
        "unregistered_time": framework.unregistered_time,
        "resources": (used + offered).flat(),
        "tasks": [task_json(t) for t in framework.tasks.values() if t.unreachable_time is None],
        "unreachable_tasks": [_unreachable_json(t) for t in framework.tasks.values()
                              if t.unreachable_time is not None],
        "completed_tasks": [task_json(t) for t in framework.completed_tasks],
        "offers": [offer_json(o) for o in framework.offers.values()],
        "executors": [executor_json(e) for e in executors],
    }
    if framework.reregistered_time is not None:
        out["reregistered_time"] = framework.reregistered_time
    if info.principal:
        out["principal"] = info.principal
    if any(c.type == mesos_pb2.FrameworkInfo.Capability.MULTI_ROLE for c in info.capabilities):
        out["roles"] = list(info.roles)
    else:
        out["role"] = info.role or "*"
    if info.HasField("labels"):
        out["labels"] = to_dict(info.labels).get("labels", [])
    return out


def agent_json(master: Master, agent: Agent, used: Resources | None = None,
               offered: Resources | None = None) -> dict[str, Any]:
    """An agent as Mesos's ``json(Slave)``; ``used`` (live tasks and custom executors) and
    ``offered`` are summed here unless given."""
    used = master.book.used_on(agent.id) if used is None else used
    offered = master.book.offered_on(agent.id) if offered is None else offered
    reserved: dict[str, Any] = {
        role: agent.total.reserved(role).flat() for role in sorted(agent.total.roles())
    }
    out: dict[str, Any] = {
        "id": agent.id,
        "hostname": agent.info.hostname,
        "port": agent.info.port,
        "attributes": flat_json(agent.info.attributes),
        "pid": agent.pid,
        "registered_time": agent.registered_time,
        "resources": agent.total.flat(),
        "used_resources": used.flat(),
        "offered_resources": offered.flat(),
        "reserved_resources": reserved,
        "unreserved_resources": agent.total.unreserved().flat(),
        "active": agent.active,
        "deactivated": False,
        "version": agent.version or __version__,
        "capabilities": [
            mesos_pb2.AgentInfo.Capability.Type.Name(c)
            for c in agent.capabilities
        ],
        "reserved_resources_full": {
            role: [to_dict(r) for r in agent.total.reserved(role).to_proto()]
            for role in sorted(agent.total.roles())
        },
    }
    if agent.reregistered_time is not None:
        out["reregistered_time"] = agent.reregistered_time
    return out


def frameworks_json(master: Master, framework_id: str | None = None) -> dict[str, Any]:
    active = [f for f in master.book.frameworks.values() if framework_id in (None, f.id)]
    done = [f for f in master.book.completed_frameworks if framework_id in (None, f.id)]
    return {
        "frameworks": [framework_json(master, f) for f in active],
        "completed_frameworks": [framework_json(master, f) for f in done],
        "unregistered_frameworks": [],
    }


def slaves_json(master: Master, agent_id: str | None = None) -> dict[str, Any]:
    used, offered = agent_views.usage(master.book)

    def entry(agent: Agent) -> dict[str, Any]:  # kept on the agent while it shows the same
        made = agent_views.key(master, agent, used[agent.id], offered[agent.id])
        return agent_views.kept(agent, "state", made, lambda: agent_json(
            master, agent, used[agent.id], offered[agent.id]))

    return {
        "slaves": [entry(a) for a in master.book.agents.values() if agent_id in (None, a.id)],
        "recovered_slaves": [
            recovered_agent_json(info)
            for recovered_id, info in master.book.recovered_agents.items()
            if agent_id in (None, recovered_id)
        ],
    }


def recovered_agent_json(info: mesos_pb2.AgentInfo) -> dict[str, Any]:
    """An agent known from the registry only, as Mesos's ``json(SlaveInfo)``."""
    out: dict[str, Any] = {
        "id": info.id.value,
        "hostname": info.hostname,
        "port": info.port,
        "attributes": flat_json(info.attributes),
    }
    if info.HasField("domain"):
        out["domain"] = to_dict(info.domain)
    return out


def roles_json(master: Master) -> dict[str, Any]:
    roles: dict[str, dict[str, Any]] = {}

    def entry(name: str) -> dict[str, Any]:
        if name not in roles:
            roles[name] = {
                "name": name,
                "weight": master.allocator.weight(name),
                "frameworks": [],
                "resources": Resources(),
                "allocated": Resources(),
                "offered": Resources(),
                "reserved": Resources(),
            }
        return roles[name]

    # Mesos lists whitelisted roles, roles with frameworks, and roles with a weight or quota.
    book = master.book
    for role in book.roles:
        entry(role)
    for role in [*book.registry.weights, *book.registry.quota]:
        entry(role)
    for framework in book.frameworks.values():
        for role in framework.roles:
            entry(role)["frameworks"].append(framework.id)
        for task in framework.tasks.values():
            if not task.terminal:
                entry(task.role)["allocated"] += task.resources
        for executor in book.executors_of(framework.id):
            entry(executor.role)["allocated"] += executor.resources
        for offer in framework.offers.values():
            entry(offer.role)["offered"] += offer.resources
    for agent in book.agents.values():
        for role in agent.total.roles():
            entry(role)["reserved"] += agent.total.reserved(role)
    out = []
    for name in sorted(roles):
        record = roles[name]
        total = record["allocated"] + record["offered"]
        out.append(
            {
                "name": name,
                "weight": record["weight"],
                "frameworks": record["frameworks"],
                "resources": total.flat(),
                "allocated": record["allocated"].flat(),
                "offered": record["offered"].flat(),
                "reserved": record["reserved"].flat(),
                "quota": _quota_json(master, name),
            }
        )
    return {"roles": out}


def _unreachable_json(task: Task) -> dict[str, Any]:
    out = dict(task_json(task))  # a copy: the rendered task is shared
    out["state"] = "TASK_UNREACHABLE"
    return out


def _quota_json(master: Master, role: str) -> dict[str, Any]:
    quota = master.book.registry.quota.get(role)
    consumed = master.allocator.quota_consumed(role)
    return {
        "role": role,
        "guarantee": _scalars_flat(quota.guarantee) if quota else {},
        "limit": _scalars_flat(quota.limit) if quota else {},
        "consumed": _scalars_flat(consumed),
    }


def _scalars_flat(quantities: dict[str, int]) -> dict[str, float]:
    return {name: value / 1000 for name, value in sorted(quantities.items())}


def tasks_json(master: Master, query: Any) -> dict[str, Any]:
    return {"tasks": [task_json(t) for t in task_query.select(master.book, query)]}


def state_json(master: Master) -> dict[str, Any]:
    info, book = master.info, master.book
    out: dict[str, Any] = {
        **version_json(),
        "start_time": master.start_time,
        "elected_time": master.elected_time or master.start_time,
        "id": master.id,
        "pid": info.pid,
        "hostname": info.hostname,
        "capabilities": [],
        "activated_slaves": sum(1 for a in book.agents.values() if a.active),
        "deactivated_slaves": sum(1 for a in book.agents.values() if not a.active),
        "unreachable_slaves": len(book.registry.unreachable),
        "leader": info.pid,
        "leader_info": to_dict(info),
        "flags": as_strings(master.config),
        "orphan_tasks": [],
    }
    if master.config.cluster:
        out["cluster"] = master.config.cluster
    if master.config.log_dir:
        out["log_dir"] = master.config.log_dir
    out.update(slaves_json(master))
    out.update(frameworks_json(master))
    return out


def metrics_json(master: Master) -> dict[str, float]:
    book = master.book
    out: dict[str, float] = {
        "master/elected": 1.0,
        "master/uptime_secs": master.effects.now() - master.start_time,
        "master/slaves_active": sum(1.0 for a in book.agents.values() if a.active),
        "master/slaves_connected": sum(1.0 for a in book.agents.values() if a.connected),
        "master/slaves_disconnected": sum(
            1.0 for a in book.agents.values() if not a.connected
        ),
        "master/slaves_inactive": sum(1.0 for a in book.agents.values() if not a.active),
        "master/slaves_unreachable": float(len(book.registry.unreachable)),
        "master/frameworks_active": sum(1.0 for f in book.frameworks.values() if f.active),
        "master/frameworks_connected": sum(
            1.0 for f in book.frameworks.values() if f.connected
        ),
        "master/frameworks_disconnected": sum(
            1.0 for f in book.frameworks.values() if not f.connected
        ),
        "master/frameworks_inactive": sum(
            1.0 for f in book.frameworks.values() if not f.active
        ),
        "master/outstanding_offers": float(len(book.offers)),
    }
    def key(state: TaskState) -> str:
        name = mesos_pb2.TaskState.Name(state).lower()
        return "master/" + name.replace("task_", "tasks_", 1)

    names = {state: key(state) for state in mesos_pb2.TaskState.values()}
    counts = dict.fromkeys(names.values(), 0.0)
    # Terminal states are counters in Mesos: a torn-down framework's tasks still count.
    for framework in [*book.frameworks.values(), *book.completed_frameworks]:
        for task in [*framework.tasks.values(), *framework.completed_tasks]:
            counts[names[task.state]] += 1
    out.update(counts)
    total = Resources.sum(agent.total for agent in book.agents.values())
    used = Resources.sum(agent_views.usage(book)[0].values())  # agents' tasks and executors
    for resource in ("cpus", "mem", "disk", "gpus"):
        t, u = total.scalar(resource), used.scalar(resource)
        out[f"master/{resource}_total"] = t
        out[f"master/{resource}_used"] = u
        out[f"master/{resource}_percent"] = u / t if t else 0.0
    for metric, value in master.effects.metrics.items():
        out[metric] = float(value)
    return out
