"""The master's flags (names and defaults as Mesos's ``mesos-master``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from agent_runtime.errors import BadRequest
from agent_runtime.flags import Duration, flag


@dataclass(frozen=True)
class MasterConfig:
    ip: str = flag("127.0.0.1", "IP address to listen on")
    port: int = flag(5050, "Port to listen on")
    hostname: str | None = flag(None, "Hostname the master advertises")
    advertise_ip: str | None = flag(
        None, "IP advertised to reach the master (MasterInfo, ZooKeeper); not bound to")
    advertise_port: int | None = flag(None, "Port advertised to reach the master; not bound to")
    work_dir: str | None = flag(None, "Where the registry is kept (the embedded default)")
    agent_port: int = flag(
        0, "Port of the internal gRPC agent link (0: any free port; agents learn it over HTTP)"
    )
    allocation_interval: Duration = flag(Duration(1.0), "Time between allocation cycles")
    offer_timeout: Duration | None = flag(None, "Rescind offers held longer than this")
    agent_ping_timeout: Duration = flag(Duration(15.0), "Ping interval/timeout for agents")
    max_agent_ping_timeouts: int = flag(5, "Missed pings before an agent is removed")
    agent_reregister_timeout: Duration = flag(Duration(600.0), "Agents re-register in this time")
    heartbeat_interval: Duration = flag(
        Duration(15.0), "Scheduler HEARTBEAT interval (ours; Mesos fixes it at 15secs)"
    )
    roles: str | None = flag(None, "Comma-separated whitelist of roles (deprecated in Mesos)")
    weights: str | None = flag(None, "role=weight pairs, comma separated")
    filter_gpu_resources: bool = flag(True, "Offer GPU agents only to GPU_RESOURCES frameworks")
    max_completed_frameworks: int = flag(50, "Completed frameworks kept for the state endpoints")
    max_completed_tasks_per_framework: int = flag(1000, "Completed tasks kept per framework")
    cluster: str | None = flag(None, "Human readable cluster name")
    quiet: bool = flag(False, "Log warnings only")
    log_dir: str | None = flag(None, "Where to write logs (stderr when unset)")
    zk: str | None = flag(
        None, "zk://host1:port1,host2:port2,.../path: elect the leader and keep the registry there"
    )
    zk_session_timeout: Duration = flag(Duration(10.0), "ZooKeeper session timeout")
    quorum: int | None = flag(None, "Size of a quorum of masters; required with --zk")
    registry: str = flag("replicated_log", "Registry persistence strategy")
    # Security (README "Securing a cluster").
    credentials: str | None = flag(
        None, "Credentials of frameworks, agents and operators (JSON or 'principal secret' "
        "lines; the text itself or a file)", secret=True
    )
    authenticate_frameworks: bool = flag(False, "Schedulers must authenticate (HTTP basic)")
    authenticate_agents: bool = flag(False, "Agents must present a --credential")
    authenticate_http_readonly: bool = flag(False, "Read-only endpoints need credentials")
    authenticate_http_readwrite: bool = flag(False, "Read-write endpoints need credentials")
    acls: str | None = flag(None, "ACLs of the local authorizer (JSON or a file)")
    max_http_connections: int = flag(
        1000, "Open HTTP connections at most; more are answered 503 and closed (ours)"
    )
    http_header_timeout: Duration = flag(
        Duration(10.0), "A request's headers must arrive within this time (ours)"
    )

    def weight_map(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for pair in filter(None, (self.weights or "").split(",")):
            role, _, value = pair.partition("=")
            out[role.strip()] = float(value)
        return out

    def role_whitelist(self) -> RoleWhitelist:
        roles = {r.strip() for r in self.roles.split(",") if r.strip()} if self.roles else None
        return RoleWhitelist(frozenset(roles) if roles is not None else None)


@dataclass(frozen=True)
class RoleWhitelist:
    """``--roles``: the one place that says whether a role may be used (None: any role).
    Frameworks, quota, weights and reservations all ask here."""

    roles: frozenset[str] | None = None

    def check(self, role: str) -> None:
        if self.roles is not None and role not in self.roles:
            raise BadRequest(f"Role '{role}' is not present in the master's --roles")

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.roles or ()))
