"""The JSON shapes of the agent's ``/state`` and its parts (frameworks, executors, tasks), as
Mesos's agent writes them; the v1 operator API and ``/containers`` share them."""

from __future__ import annotations

from typing import Any

from agent_runtime.agent.agent import Agent
from agent_runtime.agent.model import Executor, FrameworkRecord
from agent_runtime.attributes import flat_json
from agent_runtime.build_info import version_json
from agent_runtime.codec.jsonpb import to_dict
from agent_runtime.containerizer.isolator import executor_resources
from agent_runtime.flags import as_strings
from agent_runtime.proto import mesos_pb2
from agent_runtime.resources import Resources
from agent_runtime.task_states import TERMINAL_STATES


def task_json(task: mesos_pb2.Task) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": task.task_id.value,
        "name": task.name,
        "framework_id": task.framework_id.value,
        "executor_id": task.executor_id.value,
        "slave_id": task.agent_id.value,
        "state": mesos_pb2.TaskState.Name(task.state),
        "resources": Resources.from_proto(task.resources).flat(),
        "statuses": [
            {"state": mesos_pb2.TaskState.Name(s.state), "timestamp": s.timestamp}
            for s in task.statuses
        ],
    }
    if task.resources:
        # A task's resources are all allocated to one role (MESOS-6636), as Mesos writes it.
        out["role"] = task.resources[0].allocation_info.role or "*"
    if task.user:
        out["user"] = task.user
    return out


def allocated(executor: Executor) -> Resources:
    """The executor's resources plus its live tasks' (Mesos's ``allocatedResources()``)."""
    live = [task for task in executor.launched.values() if task.state not in TERMINAL_STATES]
    return executor_resources(executor.info, executor.command_executor,
                              [*live, *executor.queued.values()])


MB = 1024 * 1024


def with_allocation(usage: mesos_pb2.ResourceStatistics, executor: Executor
                     ) -> mesos_pb2.ResourceStatistics:
    """The limits a containerizer did not report are the allocation, as Mesos's containerizer
    sets ``cpus_limit`` and ``mem_limit_bytes`` from the container's resources (posix isolation
    enforces nothing, yet the limit is still what the container was given)."""
    given = allocated(executor)
    if not usage.HasField("cpus_limit") and given.scalar("cpus"):
        usage.cpus_limit = given.scalar("cpus")
    if not usage.HasField("mem_limit_bytes") and given.scalar("mem"):
        usage.mem_limit_bytes = int(given.scalar("mem") * MB)
    return usage


def container_status(executor: Executor) -> mesos_pb2.ContainerStatus:
    status = mesos_pb2.ContainerStatus()
    status.container_id.value = executor.container_id
    if executor.process is not None:
        status.executor_pid = executor.process.pid
    return status


def _role(executor: Executor) -> str | None:
    """The role the executor's resources are allocated to (one per executor, MESOS-6636)."""
    resources = [*executor.info.resources]
    for queued in executor.queued.values():
        resources.extend(queued.resources)
    for task in [*executor.launched.values(), *executor.completed]:
        resources.extend(task.resources)
    for resource in resources:
        if resource.HasField("allocation_info"):
            return str(resource.allocation_info.role)
    return None


def _executor_type(executor: Executor) -> dict[str, str]:
    """Mesos writes ``type`` only when the ExecutorInfo has one, so a command executor has none:
    its web UI reads ``DEFAULT`` as the default executor of task groups and then browses each
    task's own sandbox under the executor's, which a command task does not have."""
    if executor.command_executor:
        return {}
    if executor.info.HasField("type"):
        return {"type": mesos_pb2.ExecutorInfo.Type.Name(executor.info.type)}
    return {"type": "CUSTOM"}


def executor_json(executor: Executor) -> dict[str, Any]:
    role = _role(executor)
    return {
        "id": executor.id,
        "name": executor.info.name,
        "source": executor.info.source,
        "container": executor.container_id,
        "directory": executor.directory,
        "resources": allocated(executor).flat(),
        **({"role": role} if role is not None else {}),
        **_executor_type(executor),
        "tasks": [task_json(t) for t in executor.launched.values()
                  if t.state not in TERMINAL_STATES],
        "queued_tasks": [
            {"id": t.task_id.value, "name": t.name} for t in executor.queued.values()
        ],
        "completed_tasks": [
            task_json(t)
            for t in [*executor.completed,
                      *(t for t in executor.launched.values() if t.state in TERMINAL_STATES)]
        ],
    }


def framework_json(framework: FrameworkRecord) -> dict[str, Any]:
    info = framework.info
    out: dict[str, Any] = {
        "id": framework.id,
        "name": info.name,
        "user": info.user,
        "failover_timeout": info.failover_timeout,
        "checkpoint": info.checkpoint,
        "hostname": info.hostname,
        "capabilities": [
            mesos_pb2.FrameworkInfo.Capability.Type.Name(c.type) for c in info.capabilities
        ],
        "executors": [executor_json(e) for e in framework.executors.values()],
        "completed_executors": [executor_json(e) for e in framework.completed_executors],
    }
    if info.roles:
        out["roles"] = list(info.roles)
    else:
        out["role"] = info.role or "*"
    if info.principal:
        out["principal"] = info.principal
    return out


def state(agent: Agent) -> dict[str, Any]:
    """The agent's ``/state``."""
    master = agent.master_info
    used = Resources()
    for executor in agent.table.executors():
        used = used + allocated(executor)
    data: dict[str, Any] = {
        **version_json(),
        "start_time": agent.start_time,
        "id": agent.id,
        "pid": agent.pid,
        "hostname": agent.info.hostname,
        "capabilities": ["MULTI_ROLE", "HIERARCHICAL_ROLE", "RESERVATION_REFINEMENT"],
        "resources": agent.resources.flat(),
        "reserved_resources": {
            role: agent.resources.reserved(role).flat()
            for role in sorted(agent.resources.roles())
        },
        "unreserved_resources": agent.resources.unreserved().flat(),
        "reserved_resources_full": {
            role: [to_dict(r) for r in agent.resources.reserved(role).to_proto()]
            for role in sorted(agent.resources.roles())
        },
        "unreserved_resources_full": [
            to_dict(r) for r in agent.resources.unreserved().to_proto()
        ],
        "reserved_resources_allocated": {
            role: used.reserved(role).flat() for role in sorted(used.roles())
        },
        "unreserved_resources_allocated": used.unreserved().flat(),
        "resource_providers": [],
        "attributes": flat_json(agent.info.attributes),
        "master_hostname": master.hostname if master is not None else "",
        "flags": as_strings(agent.config),
        "frameworks": [framework_json(f) for f in agent.table.frameworks()],
        "completed_frameworks": [
            framework_json(f) for f in agent.table.completed_frameworks()],
    }
    if agent.config.log_dir:
        data["log_dir"] = agent.config.log_dir
    return data


__all__ = ["MB", "allocated", "container_status", "executor_json", "framework_json", "state",
           "task_json", "with_allocation"]
