"""The master's ``/metrics`` (Prometheus text format).

Besides every ``/metrics/snapshot`` key as a gauge (``agent_runtime/prometheus_text.py``):

- ``mesos_master_task_states{state}``: tasks the master knows, by state;
- ``mesos_master_role_allocated|offered|reserved{role,resource}`` and
  ``mesos_master_role_quota_guarantee|limit|consumed{role,resource}`` from ``/roles``;
- ``mesos_allocator_cycle_seconds``: a histogram of allocation runs;
- ``mesos_master_task_launch_seconds``: a histogram of the time from the master sending a task
  to its agent until its first TASK_RUNNING comes back.

Example queries: ``sum by (role) (mesos_master_role_allocated{resource="cpus"})``,
``histogram_quantile(0.99, rate(mesos_master_task_launch_seconds_bucket[5m]))``,
``mesos_master_task_states{state="TASK_RUNNING"}``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

from agent_runtime.master import task_query
from agent_runtime.master.master import Master
from agent_runtime.master.state_json import metrics_json, roles_json
from agent_runtime.prometheus_text import Families, snapshot_gauges
from agent_runtime.proto import internal_pb2, mesos_pb2, scheduler_pb2

CYCLE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
LAUNCH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
MAX_PENDING = 100_000  # launches awaiting their TASK_RUNNING; the oldest are dropped past this


class MasterMetrics:
    def __init__(self, master: Master) -> None:
        self.master = master
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(Families(self._families))
        self.cycle = Histogram("mesos_allocator_cycle_seconds", "Allocation run time",
                               buckets=CYCLE_BUCKETS, registry=self.registry)
        self.launch = Histogram("mesos_master_task_launch_seconds",
                                "From sending a task to its agent to its first TASK_RUNNING",
                                buckets=LAUNCH_BUCKETS, registry=self.registry)
        self._sent: dict[str, float] = {}
        master.effects.watchers.append(self._watch)
        master.effects.gauge_watchers.append(self._gauge)

    def _gauge(self, metric: str, value: int) -> None:
        if metric == "allocator/mesos/allocation_run_ms":
            self.cycle.observe(value / 1000)

    def _watch(self, sent: object) -> None:
        if isinstance(sent, internal_pb2.MasterMessage) and sent.HasField("run_task"):
            if len(self._sent) >= MAX_PENDING:
                self._sent.pop(next(iter(self._sent)))
            self._sent[sent.run_task.task.task_id.value] = time.monotonic()
        elif isinstance(sent, scheduler_pb2.Event) and sent.type == scheduler_pb2.Event.UPDATE:
            status = sent.update.status
            started = self._sent.get(status.task_id.value)
            if started is not None and (status.state == mesos_pb2.TASK_RUNNING
                                        or status.state in _ENDS):
                del self._sent[status.task_id.value]
                if status.state == mesos_pb2.TASK_RUNNING:
                    self.launch.observe(time.monotonic() - started)

    def _families(self) -> Iterable[Metric]:
        yield from snapshot_gauges(metrics_json(self.master))
        states = GaugeMetricFamily("mesos_master_task_states", "Tasks the master knows, by state",
                                   labels=["state"])
        counts = dict.fromkeys(mesos_pb2.TaskState.keys(), 0)
        for task in task_query.all_tasks(self.master.book):
            counts[mesos_pb2.TaskState.Name(task.state)] += 1
        for name, count in sorted(counts.items()):
            states.add_metric([name], count)
        yield states
        yield from _role_families(roles_json(self.master)["roles"])


_ENDS = {mesos_pb2.TASK_FINISHED, mesos_pb2.TASK_FAILED, mesos_pb2.TASK_KILLED,
         mesos_pb2.TASK_ERROR, mesos_pb2.TASK_LOST, mesos_pb2.TASK_DROPPED,
         mesos_pb2.TASK_GONE, mesos_pb2.TASK_GONE_BY_OPERATOR}


def _role_families(roles: list[dict[str, object]]) -> Iterable[Metric]:
    for field in ("allocated", "offered", "reserved"):
        family = GaugeMetricFamily(f"mesos_master_role_{field}",
                                   f"Scalar resources {field} to a role",
                                   labels=["role", "resource"])
        for role in roles:
            _scalars(family, str(role["name"]), role[field])
        yield family
    for field in ("guarantee", "limit", "consumed"):
        family = GaugeMetricFamily(f"mesos_master_role_quota_{field}",
                                   f"A role's quota {field}", labels=["role", "resource"])
        for role in roles:
            quota = role["quota"]
            if isinstance(quota, dict):
                _scalars(family, str(role["name"]), quota.get(field, {}))
        yield family
    weights = GaugeMetricFamily("mesos_master_role_weight", "A role's weight", labels=["role"])
    for role in roles:
        weight = role["weight"]
        if isinstance(weight, int | float):
            weights.add_metric([str(role["name"])], float(weight))
    yield weights


def _scalars(family: GaugeMetricFamily, role: str, resources: object) -> None:
    if not isinstance(resources, dict):
        return
    for name, value in sorted(resources.items()):
        if isinstance(value, int | float):
            family.add_metric([role, str(name)], float(value))


__all__ = ["MasterMetrics"]
