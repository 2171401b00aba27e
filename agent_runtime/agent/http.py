"""The agent's HTTP server: the executor API, ``/state`` and the sandbox file endpoints."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from agent_runtime import __version__
from agent_runtime.agent import files
from agent_runtime.agent.agent import Agent
from agent_runtime.agent.executor_api import ExecutorAPI
from agent_runtime.agent.model import TERMINAL, Executor, FrameworkRecord
from agent_runtime.codec.jsonpb import to_dict
from agent_runtime.flags import as_strings
from agent_runtime.http_util import MAX_BODY, Handler, error_middleware, json_response
from agent_runtime.proto import mesos_pb2
from agent_runtime.resources import Resources


def _task_json(task: mesos_pb2.Task) -> dict[str, Any]:
    return {
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


def _executor_json(executor: Executor) -> dict[str, Any]:
    return {
        "id": executor.id,
        "name": executor.info.name,
        "source": executor.info.source,
        "container": executor.container_id,
        "directory": executor.directory,
        "resources": Resources.from_proto(executor.info.resources).flat(),
        "type": "DEFAULT" if executor.command_executor else "CUSTOM",
        "tasks": [_task_json(t) for t in executor.launched.values() if t.state not in TERMINAL],
        "queued_tasks": [
            {"id": t.task_id.value, "name": t.name} for t in executor.queued.values()
        ],
        "completed_tasks": [
            _task_json(t)
            for t in [*executor.completed,
                      *(t for t in executor.launched.values() if t.state in TERMINAL)]
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

    async def state(request: web.Request) -> web.Response:
        master = agent.master_info
        data: dict[str, Any] = {
            "version": __version__,
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
            "unreserved_resources_full": [
                to_dict(r) for r in agent.resources.unreserved().to_proto()
            ],
            "attributes": {a.name: to_dict(a) for a in agent.info.attributes},
            "master_hostname": master.hostname if master is not None else "",
            "flags": as_strings(agent.config),
            "frameworks": [_framework_json(f) for f in agent.frameworks.values()],
            "completed_frameworks": [_framework_json(f) for f in agent.completed_frameworks],
        }
        return json_response(data, request)

    async def flags(request: web.Request) -> web.Response:
        return json_response({"flags": as_strings(agent.config)}, request)

    async def health(request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def version(request: web.Request) -> web.Response:
        return json_response({"version": __version__}, request)

    async def metrics(request: web.Request) -> web.Response:
        running = sum(len(f.executors) for f in agent.frameworks.values())
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

    async def statistics(request: web.Request) -> web.Response:
        return json_response([], request)

    routes: dict[str, Handler] = {
        "/state": state,
        "/flags": flags,
        "/health": health,
        "/monitor/statistics": statistics,
        "/containers": statistics,
    }
    app = web.Application(middlewares=[error_middleware], client_max_size=MAX_BODY)
    for path, handler in routes.items():
        app.router.add_get(path, handler)
        app.router.add_get("/slave(1)" + path, handler)
    app.router.add_get("/state.json", state)
    app.router.add_get("/slave(1)/state.json", state)
    app.router.add_get("/monitor/statistics.json", statistics)
    app.router.add_get("/version", version)
    app.router.add_get("/metrics/snapshot", metrics)
    app.router.add_get("/files/browse", browse)
    app.router.add_get("/files/browse.json", browse)
    app.router.add_get("/files/read", read)
    app.router.add_get("/files/read.json", read)
    for path in ("/api/v1/executor", "/slave(1)/api/v1/executor"):
        app.router.add_route("*", path, executor_api.handle)
    return app
