"""The master's legacy (v0) operator endpoints for maintenance and the summary the web UIs poll:
``/master/maintenance/schedule`` (GET, POST a Schedule), ``/master/maintenance/status``,
``/master/machine/down`` and ``/master/machine/up`` (POST a JSON array of MachineIDs), and
``/master/state-summary`` (agents and frameworks with their task counts per state); and
``/metrics``, the Prometheus text format (``master/prometheus.py``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from agent_runtime.codec import jsonpb
from agent_runtime.errors import BadRequest, MethodNotAllowed
from agent_runtime.http_util import Handler, json_response, require_post
from agent_runtime.master import state_json
from agent_runtime.master.master import Master
from agent_runtime.master.model import Task
from agent_runtime.master.prometheus import MasterMetrics
from agent_runtime.prometheus_text import CONTENT_TYPE, render
from agent_runtime.proto import maintenance_pb2, mesos_pb2

COUNTED = ("TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_FINISHED",
           "TASK_KILLED", "TASK_FAILED", "TASK_LOST", "TASK_ERROR", "TASK_UNREACHABLE")


def _count(tasks: list[Task], partition_aware: dict[str, bool]) -> dict[str, int]:
    counts = dict.fromkeys(COUNTED, 0)
    for task in tasks:
        name = mesos_pb2.TaskState.Name(
            task.reported_state(partition_aware.get(task.framework_id, True)))
        if name in counts:
            counts[name] += 1
    return counts


def state_summary(master: Master) -> dict[str, Any]:
    book = master.book
    frameworks = [*book.frameworks.values(), *book.completed_frameworks]
    aware = {f.id: f.partition_aware for f in frameworks}
    every = [t for f in frameworks for t in [*f.tasks.values(), *f.completed_tasks]]
    agents = []
    for agent in book.agents.values():
        on = [t for t in every if t.agent_id == agent.id]
        entry = state_json.agent_json(master, agent)
        entry.update(_count(on, aware))
        entry["framework_ids"] = sorted({t.framework_id for t in on if not t.terminal})
        agents.append(entry)
    out_frameworks = []
    for framework in book.frameworks.values():
        full = state_json.framework_json(master, framework)
        entry = {k: v for k, v in full.items()
                 if k not in ("tasks", "unreachable_tasks", "completed_tasks", "offers",
                              "executors")}
        entry.update(_count([*framework.tasks.values(), *framework.completed_tasks], aware))
        entry["slave_ids"] = sorted({t.agent_id for t in framework.tasks.values()
                                     if not t.terminal})
        out_frameworks.append(entry)
    out: dict[str, Any] = {"hostname": master.info.hostname, "slaves": agents,
                           "frameworks": out_frameworks}
    if master.config.cluster:
        out["cluster"] = master.config.cluster
    return out


async def _machines(request: web.Request) -> list[mesos_pb2.MachineID]:
    require_post(request)
    data = jsonpb.loads_json(await request.read())
    if not isinstance(data, list):
        raise BadRequest("Expecting a JSON array of machine IDs ({\"hostname\", \"ip\"})")
    out = []
    for index, item in enumerate(data):
        try:
            out.append(jsonpb.parse_dict(item, mesos_pb2.MachineID))
        except BadRequest as exc:
            raise BadRequest(f"[{index}]: {exc}") from exc
    return out


def routes(master: Master) -> dict[tuple[str, str], Handler]:
    maintenance = master.maintenance

    async def schedule(request: web.Request) -> web.Response:
        if request.method == "GET":
            return json_response(jsonpb.to_dict(maintenance.schedule), request)
        if request.method != "POST":
            raise MethodNotAllowed(f"Expecting 'GET' or 'POST', received '{request.method}'")
        parsed = jsonpb.parse(await request.read(), maintenance_pb2.Schedule)
        maintenance.update_schedule(parsed)
        return web.Response(status=200)

    async def status(request: web.Request) -> web.Response:
        data = {"draining_machines": [], "down_machines": [],
                **jsonpb.to_dict(maintenance.status())}
        return json_response(data, request)

    async def down(request: web.Request) -> web.Response:
        maintenance.start(await _machines(request))
        return web.Response(status=200)

    async def up(request: web.Request) -> web.Response:
        maintenance.stop(await _machines(request))
        return web.Response(status=200)

    async def summary(request: web.Request) -> web.Response:
        return json_response(state_summary(master), request)

    prometheus = MasterMetrics(master)

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=render(prometheus.registry),
                            headers={"Content-Type": CONTENT_TYPE})

    out: dict[tuple[str, str], Handler] = {("GET", "/metrics"): metrics}
    for prefix in ("", "/master"):
        out[("*", prefix + "/maintenance/schedule")] = schedule
        out[("GET", prefix + "/maintenance/status")] = status
        out[("*", prefix + "/machine/down")] = down
        out[("*", prefix + "/machine/up")] = up
        out[("GET", prefix + "/state-summary")] = summary
    return out


__all__ = ["routes", "state_summary"]
