"""The master's registry: what must outlive the master process.

Weights, quota, dynamic reservations (per agent id), the admitted agents (their AgentInfo, as
Mesos's ``Registry.slaves``) and the agents marked unreachable (with the time, as
``Registry.unreachable``) are kept here; frameworks and tasks come back from re-registering agents
and re-subscribing frameworks, as in Mesos. A new leader takes the admitted agents that have not
re-registered yet as *recovered* until ``--agent_reregister_timeout``. The embedded default is
one small JSON document under ``--work_dir``::

    <work_dir>/registry.json     {"version": 1, "weights": {...}, "quota": {...},
                                  "reservations": {"<agent id>": [Resource JSON, ...]},
                                  "agents": {"<agent id>": AgentInfo JSON},
                                  "unreachable": {"<agent id>": <seconds since the epoch>},
                                  "gone": {"<agent id>": <seconds since the epoch>},
                                  "principals": {"<agent id>": "<principal>"},
                                  "maintenance": {"schedule": Schedule JSON,
                                                  "down": [[hostname, ip], ...],
                                                  "deactivated": ["<agent id>", ...],
                                                  "draining": {"<agent id>": DrainConfig}}}

(``agents``, ``unreachable``, ``gone``, ``principals`` and ``maintenance`` are optional: a
document without them reads as none.) As Mesos's registry: the maintenance schedule, the
machines that are down, the agents an operator deactivated or drains, and the agents marked gone
outlive the master; so does the principal each agent id is bound to (ours).

Every change rewrites it atomically (tmp, fsync, rename), so a crash leaves the old or the new
document, never a torn one. Without ``--work_dir`` the registry lives in memory only. With
``--zk`` the same document is the znode ``<zk path>/registry``, written with the version the
leader last read (see :mod:`agent_runtime.zookeeper`): a deposed leader's write fails; it is
zlib-compressed there (plain JSON is still read), to fit a znode at 10,000 agents and more.
"""

from __future__ import annotations

import json
import logging
import os
import zlib
from dataclasses import dataclass, field
from typing import Any

from agent_runtime.codec import jsonpb
from agent_runtime.errors import RuntimeErrorBase
from agent_runtime.files import atomic_write
from agent_runtime.proto import maintenance_pb2, mesos_pb2
from agent_runtime.resources import Resources, to_millis
from agent_runtime.zookeeper import ZooKeeper, ZooKeeperError

log = logging.getLogger(__name__)

VERSION = 1
FILENAME = "registry.json"


class RegistryError(RuntimeErrorBase):
    """The registry on disk cannot be read; the master refuses to start on it."""


@dataclass(slots=True)
class Quota:
    """A role's quota over scalars, in thousandths: guarantee (deprecated in Mesos 1.9, still
    honoured) and limit. Plain mappings, not ``Resources``: a limit of 0 is meaningful."""

    guarantee: dict[str, int] = field(default_factory=dict)
    limit: dict[str, int] = field(default_factory=dict)
    principal: str = ""


@dataclass(slots=True)
class RegistryState:
    weights: dict[str, float] = field(default_factory=dict)
    quota: dict[str, Quota] = field(default_factory=dict)
    # Dynamically reserved resources per agent id, whole stacks (static base included).
    reservations: dict[str, Resources] = field(default_factory=dict)
    # Admitted agents by id, and those of them marked unreachable (when, in seconds).
    agents: dict[str, mesos_pb2.AgentInfo] = field(default_factory=dict)
    unreachable: dict[str, float] = field(default_factory=dict)
    # Agents marked gone (MARK_AGENT_GONE; when, in seconds): they may never come back.
    gone: dict[str, float] = field(default_factory=dict)
    # The principal each agent id first registered with (--authenticate_agents): its link must
    # present the same one ever after, across master failovers too.
    principals: dict[str, str] = field(default_factory=dict)
    # Maintenance (master/maintenance.py): the schedule, the machines down, the agents an
    # operator deactivated and those draining (with how).
    schedule: maintenance_pb2.Schedule = field(default_factory=maintenance_pb2.Schedule)
    down: list[tuple[str, str]] = field(default_factory=list)
    deactivated: set[str] = field(default_factory=set)
    draining: dict[str, mesos_pb2.DrainConfig] = field(default_factory=dict)


def _maintenance_json(state: RegistryState) -> dict[str, Any]:
    return {"schedule": jsonpb.to_dict(state.schedule),
            "down": [list(machine) for machine in state.down],
            "deactivated": sorted(state.deactivated),
            "draining": {agent: jsonpb.to_dict(config)
                         for agent, config in state.draining.items()}}


def _maintenance_of(data: Any, state: RegistryState) -> None:
    state.schedule = jsonpb.parse_dict(data.get("schedule", {}), maintenance_pb2.Schedule)
    state.down = [(str(hostname), str(ip)) for hostname, ip in data.get("down", [])]
    state.deactivated = {str(agent) for agent in data.get("deactivated", [])}
    state.draining = {str(agent): jsonpb.parse_dict(config, mesos_pb2.DrainConfig)
                      for agent, config in data.get("draining", {}).items()}


def _resources_json(resources: Resources) -> list[dict[str, Any]]:
    return [jsonpb.to_dict(r) for r in resources.to_proto()]


def _amounts_json(amounts: dict[str, int]) -> dict[str, float]:
    return {name: value / 1000 for name, value in sorted(amounts.items())}


def _amounts_of(data: Any) -> dict[str, int]:
    return {str(name): to_millis(float(value)) for name, value in data.items()}


def _resources_of(items: Any) -> Resources:
    return Resources.from_proto(jsonpb.parse_dict(item, mesos_pb2.Resource) for item in items)


class Registry:
    def __init__(self, work_dir: str | None, zookeeper: ZooKeeper | None = None) -> None:
        self.path = os.path.join(work_dir, FILENAME) if work_dir else None
        self.zookeeper = zookeeper
        self._zk_version = -1
        self.state = RegistryState()
        self._agent_json: dict[str, tuple[mesos_pb2.AgentInfo, str]] = {}

    def _read(self) -> Any:
        if self.zookeeper is not None:
            raw, self._zk_version = self.zookeeper.read_registry()
            if raw and not raw.lstrip().startswith(b"{"):
                raw = zlib.decompress(raw)  # as written since the registry could grow large
            return json.loads(raw) if raw else None
        if self.path is None or not os.path.exists(self.path):
            return None
        with open(self.path, encoding="utf-8") as handle:
            return json.load(handle)

    def recover(self) -> RegistryState:
        """Load what a previous master left; a fresh registry when there is none."""
        where = "ZooKeeper" if self.zookeeper is not None else self.path
        try:
            data = self._read()
            if data is None:
                return self.state
            if data.get("version") != VERSION:
                raise RegistryError(f"{where}: unknown registry version {data.get('version')}")
            self.state = RegistryState(
                weights={str(k): float(v) for k, v in data.get("weights", {}).items()},
                quota={
                    role: Quota(_amounts_of(q.get("guarantee", {})),
                                _amounts_of(q.get("limit", {})), str(q.get("principal", "")))
                    for role, q in data.get("quota", {}).items()
                },
                reservations={agent: _resources_of(items)
                              for agent, items in data.get("reservations", {}).items()},
                agents={str(agent): jsonpb.parse_dict(info, mesos_pb2.AgentInfo)
                        for agent, info in data.get("agents", {}).items()},
                unreachable={str(agent): float(when)
                             for agent, when in data.get("unreachable", {}).items()},
                gone={str(agent): float(when) for agent, when in data.get("gone", {}).items()},
                principals={str(agent): str(principal)
                            for agent, principal in data.get("principals", {}).items()},
            )
            _maintenance_of(data.get("maintenance", {}), self.state)
        except ZooKeeperError:
            raise
        except (OSError, ValueError, TypeError, AttributeError, zlib.error,
                RuntimeErrorBase) as exc:
            raise RegistryError(f"cannot recover the registry from {where}: {exc}") from exc
        log.info("recovered registry: %d weights, %d quotas, reservations on %d agents, "
                 "%d agents (%d unreachable)", len(self.state.weights), len(self.state.quota),
                 len(self.state.reservations), len(self.state.agents),
                 len(self.state.unreachable))
        return self.state

    def save(self) -> None:
        """Persist the state; with ZooKeeper, :class:`Fenced` when another master wrote since."""
        if self.path is None and self.zookeeper is None:
            return
        state = self.state
        document = {
            "version": VERSION,
            "weights": dict(state.weights),
            "quota": {
                role: {"guarantee": _amounts_json(q.guarantee),
                       "limit": _amounts_json(q.limit), "principal": q.principal}
                for role, q in state.quota.items()
            },
            "reservations": {agent: _resources_json(resources)
                             for agent, resources in state.reservations.items() if resources},
            "unreachable": dict(state.unreachable),
            "gone": dict(state.gone),
            "principals": dict(state.principals),
            "maintenance": _maintenance_json(state),
        }
        # The agents are most of the document (10,000 of them: megabytes), and one changes at a
        # time: their JSON is kept per agent and spliced in, not rebuilt for every write.
        head = json.dumps(document, sort_keys=True)
        data = f'{head[:-1]}, "agents": {self._agents_text()}}}'.encode()
        if self.zookeeper is not None:
            # Compressed: a znode holds at most ~1 MB (jute.maxbuffer), 2,000 agents' worth of
            # plain JSON; these compress about 20:1.
            data = zlib.compress(data, 1)
            self._zk_version = self.zookeeper.write_registry(data, self._zk_version)
            return
        assert self.path is not None
        atomic_write(self.path, data)

    def _agents_text(self) -> str:
        """``{"<agent id>": AgentInfo JSON, ...}``, each agent's JSON cached while its AgentInfo
        is the same object (the master replaces an agent's entry, it never edits one)."""
        agents, cache = self.state.agents, self._agent_json
        parts = []
        for agent_id, info in agents.items():
            cached = cache.get(agent_id)
            if cached is None or cached[0] is not info:
                text = json.dumps(agent_id) + ": " + json.dumps(jsonpb.to_dict(info),
                                                                sort_keys=True)
                cached = cache[agent_id] = (info, text)
            parts.append(cached[1])
        if len(cache) > len(agents):
            for gone in [agent_id for agent_id in cache if agent_id not in agents]:
                del cache[gone]
        return "{" + ", ".join(parts) + "}"
