"""``/metrics`` in the Prometheus text format, for both daemons, through ``prometheus_client``.

Every key of ``/metrics/snapshot`` is a gauge of the same value under a Prometheus name
(``master/tasks_running`` is ``mesos_master_tasks_running``): one source of numbers, so the two
endpoints agree. Each daemon adds labelled families (tasks by state, per-role allocation and
quota, containers' usage) and its histograms, which live as long as the daemon.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_UNSAFE = re.compile(r"[^a-zA-Z0-9_]")


def prometheus_name(key: str) -> str:
    """``master/cpus_used`` -> ``mesos_master_cpus_used``; anything unsafe becomes ``_``."""
    name = "mesos_" + _UNSAFE.sub("_", key)
    return re.sub(r"__+", "_", name).rstrip("_")


def snapshot_gauges(snapshot: Mapping[str, float]) -> list[Metric]:
    out: list[Metric] = []
    seen: set[str] = set()
    for key, value in sorted(snapshot.items()):
        name = prometheus_name(key)
        if name in seen:
            continue  # two keys that differ only in unsafe characters: the first wins
        seen.add(name)
        family = GaugeMetricFamily(name, f"Mesos metric {key}")
        family.add_metric([], float(value))
        out.append(family)
    return out


class Families(Collector):
    """A collector over a function that builds the families at each scrape."""

    def __init__(self, build: Callable[[], Iterable[Metric]]) -> None:
        self._build = build

    def collect(self) -> Iterable[Metric]:
        return list(self._build())


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


__all__ = ["CONTENT_TYPE", "Families", "prometheus_name", "render", "snapshot_gauges"]
