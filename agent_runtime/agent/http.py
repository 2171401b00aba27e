"""The agent's HTTP server: the executor API, the operator API (``operator_api.py``), ``/state``,
container usage (``/monitor/statistics``, ``/containers``) and the sandbox file endpoints."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from agent_runtime import __version__
from agent_runtime.agent import files
from agent_runtime.agent.agent import Agent
from agent_runtime.agent.executor_api import ExecutorAPI
from agent_runtime.agent.model import Executor, FrameworkRecord
from agent_runtime.agent.operator_api import OperatorAPI, image_pruner
from agent_runtime.attributes import flat_json
from agent_runtime.codec.jsonpb import to_dict
from agent_runtime.containerizer.isolator import executor_resources
from agent_runtime.flags import as_strings
from agent_runtime.http_util import MAX_BODY, Handler, error_middleware, json_response
from agent_runtime.proto import mesos_pb2
from agent_runtime.resources import Resources
from agent_runtime.task_states import TERMINAL_STATES

# What /version answers (both daemons, as Mesos); the build keys are empty outside a release.
VERSION: dict[str, Any] = {
    "version": __version__,
    "build_date": "",
    "build_time": 0.0,
    "build_user": "",
    "git_sha": "",
    "git_branch": "",
    "git_tag": "",
}


def _task_json(task: mesos_pb2.Task) -> dict[str, Any]:
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


def _allocated(executor: Executor) -> Resources:
    """The executor's resources plus its live tasks' (Mesos's ``allocatedResources()``)."""
    live = [task for task in executor.launched.values() if task.state not in TERMINAL_STATES]
    return executor_resources(executor.info, executor.command_executor,
                              [*live, *executor.queued.values()])




MB = 1024 * 1024


def _with_allocation(usage: mesos_pb2.ResourceStatistics, executor: Executor
                     ) -> mesos_pb2.ResourceStatistics:
    """The limits a containerizer did not report are the allocation, as Mesos's containerizer
    sets ``cpus_limit`` and ``mem_limit_bytes`` from the container's resources (posix isolation
    enforces nothing, yet the limit is still what the container was given)."""
    allocated = _allocated(executor)
    if not usage.HasField("cpus_limit") and allocated.scalar("cpus"):
        usage.cpus_limit = allocated.scalar("cpus")
    if not usage.HasField("mem_limit_bytes") and allocated.scalar("mem"):
        usage.mem_limit_bytes = int(allocated.scalar("mem") * MB)
    return usage


def _container_status(executor: Executor) -> mesos_pb2.ContainerStatus:
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


def _executor_json(executor: Executor) -> dict[str, Any]:
    role = _role(executor)
    return {
        "id": executor.id,
        "name": executor.info.name,
        "source": executor.info.source,
        "container": executor.container_id,
        "directory": executor.directory,
        "resources": _allocated(executor).flat(),
        **({"role": role} if role is not None else {}),
        "type": "DEFAULT" if executor.command_executor else "CUSTOM",
        "tasks": [_task_json(t) for t in executor.launched.values()
                  if t.state not in TERMINAL_STATES],
        "queued_tasks": [
            {"id": t.task_id.value, "name": t.name} for t in executor.queued.values()
        ],
        "completed_tasks": [
            _task_json(t)
            for t in [*executor.completed,
                      *(t for t in executor.launched.values() if t.state in TERMINAL_STATES)]
        ],
    }


def _framework_json(framework: FrameworkRecord) -> dict[str, Any]:
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
        "executors": [_executor_json(e) for e in framework.executors.values()],
        "completed_executors": [_executor_json(e) for e in framework.completed_executors],
    }
    if info.roles:
        out["roles"] = list(info.roles)
    else:
        out["role"] = info.role or "*"
    if info.principal:
        out["principal"] = info.principal
    return out


def make_app(agent: Agent) -> web.Application:
    executor_api = ExecutorAPI(agent)
    operator_api = OperatorAPI(image_pruner(agent.containerizer))

    async def state(request: web.Request) -> web.Response:
        master = agent.master_info
        allocated = Resources()
        for executor in agent.table.executors():
            allocated = allocated + _allocated(executor)
        data: dict[str, Any] = {
            **VERSION,
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
                role: allocated.reserved(role).flat() for role in sorted(allocated.roles())
            },
            "unreserved_resources_allocated": allocated.unreserved().flat(),
            "resource_providers": [],
            "attributes": flat_json(agent.info.attributes),
            "master_hostname": master.hostname if master is not None else "",
            "flags": as_strings(agent.config),
            "frameworks": [_framework_json(f) for f in agent.table.frameworks()],
            "completed_frameworks": [
                _framework_json(f) for f in agent.table.completed_frameworks()],
        }
        if agent.config.log_dir:
            data["log_dir"] = agent.config.log_dir
        return json_response(data, request)

    async def flags(request: web.Request) -> web.Response:
        return json_response({"flags": as_strings(agent.config)}, request)

    async def health(request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def version(request: web.Request) -> web.Response:
        return json_response(VERSION, request)

    async def metrics(request: web.Request) -> web.Response:
        running = sum(1 for _ in agent.table.executors())
        data = {
            "slave/registered": 1.0 if agent.info.HasField("id") else 0.0,
            "slave/uptime_secs": agent.clock() - agent.start_time,
            "slave/executors_running": float(running),
        }
        for name in ("cpus", "mem", "disk", "gpus"):
            data[f"slave/{name}_total"] = agent.resources.scalar(name)
        return json_response(data, request)

    async def browse(request: web.Request) -> web.Response:
        return json_response(
            files.browse(agent.config.work_dir, agent.id, request.query.get("path", "")), request
        )

    async def read(request: web.Request) -> web.Response:
        query = request.query
        data = files.read(agent.config.work_dir, agent.id, query.get("path", ""),
                          query.get("offset"), query.get("length"))
        return json_response(data, request)

    async def usages(executors: list[Executor]) -> list[mesos_pb2.ResourceStatistics | None]:
        # Concurrent: a Docker container's figures are a round trip to the engine each.
        found = await asyncio.gather(
            *(agent.containerizer.usage(e.container_id) for e in executors))
        return [None if usage is None else _with_allocation(usage, executor)
                for executor, usage in zip(executors, found, strict=True)]

    def identity(executor: Executor) -> dict[str, Any]:
        return {"executor_id": executor.id, "executor_name": executor.info.name,
                "framework_id": executor.framework_id, "source": executor.info.source}

    async def statistics(request: web.Request) -> web.Response:
        """Mesos's ResourceMonitor: containers whose usage cannot be told are left out."""
        executors = list(agent.table.executors())
        return json_response([
            {**identity(e), "statistics": to_dict(usage)}
            for e, usage in zip(executors, await usages(executors), strict=True)
            if usage is not None
        ], request)

    async def containers(request: web.Request) -> web.Response:
        """Every running container, filtered by the query's ``container_id``, ``framework_id``
        and ``executor_id``; ``statistics`` is absent when its usage cannot be told (Mesos)."""
        query = request.query
        executors = [
            e for e in agent.table.executors()
            if query.get("container_id", e.container_id) == e.container_id
            and query.get("framework_id", e.framework_id) == e.framework_id
            and query.get("executor_id", e.id) == e.id
        ]
        out = []
        for executor, usage in zip(executors, await usages(executors), strict=True):
            entry = {**identity(executor), "container_id": executor.container_id,
                     "status": to_dict(_container_status(executor))}
            if usage is not None:
                entry["statistics"] = to_dict(usage)
            out.append(entry)
        return json_response(out, request)

    routes: dict[str, Handler] = {
        "/state": state,
        "/flags": flags,
        "/health": health,
        "/monitor/statistics": statistics,
        "/containers": containers,
    }
    gets: dict[str, Handler] = {
        "/state.json": state,
        "/slave(1)/state.json": state,
        "/monitor/statistics.json": statistics,
        "/version": version,
        "/metrics/snapshot": metrics,
        "/files/browse": browse,
        "/files/browse.json": browse,
        "/files/read": read,
        "/files/read.json": read,
    }
    for path, handler in routes.items():
        gets[path] = handler
        gets["/slave(1)" + path] = handler
    app = web.Application(middlewares=[error_middleware], client_max_size=MAX_BODY)
    # Mesos strips a trailing '/', so `/state/` is `/state`.
    for path, handler in gets.items():
        app.router.add_get(path, handler)
        app.router.add_get(path + "/", handler)
    for path in ("/api/v1/executor", "/slave(1)/api/v1/executor"):
        app.router.add_route("*", path, executor_api.handle)
        app.router.add_route("*", path + "/", executor_api.handle)
    for path in ("/api/v1", "/slave(1)/api/v1"):
        app.router.add_route("*", path, operator_api.handle)
        app.router.add_route("*", path + "/", operator_api.handle)
    return app
