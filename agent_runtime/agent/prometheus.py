"""The agent's ``/metrics`` (Prometheus text format).

Every ``/metrics/snapshot`` key as a gauge (``mesos_slave_tasks_running`` ...), and per running
container, from its cgroups (or the Docker engine) as ``/monitor/statistics`` reports it:
``mesos_container_cpus_user_seconds``, ``mesos_container_cpus_system_seconds``,
``mesos_container_cpus_limit``, ``mesos_container_mem_rss_bytes``,
``mesos_container_mem_limit_bytes``, labelled ``container_id``, ``framework_id``,
``executor_id``.

Example queries: ``rate(mesos_container_cpus_user_seconds[1m])`` (cpu used per container),
``mesos_container_mem_rss_bytes / mesos_container_mem_limit_bytes`` (memory pressure).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric

from agent_runtime.agent import metrics
from agent_runtime.agent.agent import Agent
from agent_runtime.agent.model import Executor
from agent_runtime.agent.state_json import with_allocation
from agent_runtime.prometheus_text import Families, render, snapshot_gauges
from agent_runtime.proto import mesos_pb2

CONTAINER_FIELDS = {
    "cpus_user_time_secs": ("mesos_container_cpus_user_seconds", "User cpu time"),
    "cpus_system_time_secs": ("mesos_container_cpus_system_seconds", "System cpu time"),
    "cpus_limit": ("mesos_container_cpus_limit", "Cpus the container was given"),
    "mem_rss_bytes": ("mesos_container_mem_rss_bytes", "Resident memory"),
    "mem_limit_bytes": ("mesos_container_mem_limit_bytes", "Memory limit"),
}
LABELS = ["container_id", "framework_id", "executor_id"]


def _container_families(found: list[tuple[Executor, mesos_pb2.ResourceStatistics]]
                        ) -> Iterable[Metric]:
    for field, (name, text) in CONTAINER_FIELDS.items():
        family = GaugeMetricFamily(name, text, labels=LABELS)
        for executor, usage in found:
            if usage.HasField(field):  # type: ignore[arg-type]
                family.add_metric([executor.container_id, executor.framework_id, executor.id],
                                  float(getattr(usage, field)))
        yield family


async def scrape(agent: Agent) -> bytes:
    executors = list(agent.table.executors())
    usages = await asyncio.gather(
        *(agent.containerizer.usage(e.container_id) for e in executors))
    found = [(e, with_allocation(u, e)) for e, u in zip(executors, usages, strict=True)
             if u is not None]
    snapshot = metrics.snapshot(agent)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Families(lambda: [*snapshot_gauges(snapshot),
                                        *_container_families(found)]))
    return render(registry)


__all__ = ["scrape"]
