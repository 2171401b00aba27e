"""The agent's flags (names and defaults as Mesos's ``mesos-agent``)."""

from __future__ import annotations

from dataclasses import dataclass

from agent_runtime.flags import Bytes, Duration, flag


@dataclass(frozen=True)
class AgentConfig:
    master: str = flag("", "host:port of the master (required)")
    work_dir: str = flag("", "Where sandboxes and checkpoints live (required)")
    ip: str = flag("127.0.0.1", "IP address to listen on")
    port: int = flag(5051, "Port to listen on")
    hostname: str | None = flag(None, "Hostname the agent advertises")
    advertise_ip: str | None = flag(None, "IP advertised to the master and executors")
    advertise_port: int | None = flag(None, "Port advertised with it; not bound to")
    resources: str | None = flag(None, "Resources (text 'cpus:4;mem:2048' or a JSON array)")
    attributes: str | None = flag(None, "Attributes, e.g. 'rack:2;zone:a'")
    default_role: str = flag("*", "Role of resources given without one")
    containerizers: str = flag("mesos", "Comma-separated containerizers")
    isolation: str = flag("posix/cpu,posix/mem", "Comma-separated isolators")
    launcher: str = flag("posix", "posix or linux")
    executor_registration_timeout: Duration = flag(
        Duration(60.0), "Executors must subscribe within this time"
    )
    executor_reregistration_timeout: Duration = flag(
        Duration(2.0), "Executors must re-subscribe after an agent restart within this time"
    )
    executor_shutdown_grace_period: Duration = flag(
        Duration(5.0), "Grace period before an executor is killed on shutdown"
    )
    executor_environment_variables: str | None = flag(
        None, "JSON object of environment variables for executors"
    )
    registration_backoff_factor: Duration = flag(Duration(1.0), "Registration retry backoff")
    recover: str = flag("reconnect", "reconnect or cleanup")
    recovery_timeout: Duration = flag(Duration(900.0), "Time executors wait for the agent")
    # Mesos's STATUS_UPDATE_RETRY_INTERVAL_MIN, a constant there: a flag here so that tests of
    # the retry need not wait 10 s for it.
    status_update_retry_interval_min: Duration = flag(
        Duration(10.0), "First wait before an unacknowledged status update is sent again "
        "(doubling up to 10mins)")
    strict: bool = flag(True, "Recovery errors are fatal")
    checkpoint: bool = flag(True, "Checkpoint for recovery (always on in Mesos >= 0.25)")
    switch_user: bool = flag(
        True, "Run tasks as their command's or framework's user (the agent must run as root)"
    )
    sandbox_directory: str = flag("/mnt/mesos/sandbox", "Sandbox path inside image containers")
    image_providers: str | None = flag(None, "docker, appc (Mesos containerizer images)")
    docker_registry: str | None = flag(None, "Registry URL or local directory of tarballs")
    docker_store_dir: str = flag("/tmp/mesos/store/docker", "Docker image layer cache")
    image_max_layer_size: Bytes = flag(
        Bytes(16 << 30), "Most bytes one image layer may unpack to (a larger one fails its task)"
    )
    image_max_size: Bytes = flag(
        Bytes(64 << 30), "Most bytes all layers of one image may unpack to"
    )
    image_gc_config: str | None = flag(
        None, "JSON ImageGcConfig: prune unused images when the store's disk runs low"
    )
    docker_socket: str = flag("/var/run/docker.sock", "Docker Engine socket (path or URL)")
    docker_config: str | None = flag(
        None, "Docker config.json (a path or the JSON itself) with registry credentials"
    )
    docker_stop_timeout: Duration = flag(
        Duration(0.0), "Grace between SIGTERM and SIGKILL when the agent destroys a container"
    )
    docker_kill_orphans: bool = flag(
        True, "Remove mesos- containers this agent does not know at start-up"
    )
    cgroups_root: str = flag("mesos", "cgroup under which containers are placed")
    cgroups_hierarchy: str = flag("/sys/fs/cgroup", "Where cgroup hierarchies are mounted")
    cgroups_enable_cfs: bool = flag(False, "Hard-limit cpus with CFS quota")
    allowed_devices: str | None = flag(
        None, "JSON DeviceWhitelist of devices cgroups/devices allows on top of its defaults"
    )
    container_ports_watch_interval: Duration = flag(
        Duration(30.0), "How often network/ports scans the containers' listening sockets"
    )
    check_agent_port_range_only: bool = flag(
        False, "network/ports checks only listening ports inside the agent's ports resource"
    )
    enforce_container_ports: bool = flag(
        False, "network/ports kills a container listening on a port it was not given"
    )
    effective_capabilities: str | None = flag(
        None, "linux/capabilities: capabilities tasks hold, JSON {\"capabilities\": [...]} "
        "or a comma list (default: Docker's set for image tasks)"
    )
    bounding_capabilities: str | None = flag(
        None, "linux/capabilities: the most capabilities a task may hold or ask for"
    )
    seccomp_config_dir: str | None = flag(
        None, "linux/seccomp: directory of seccomp profiles (Docker's JSON format)"
    )
    seccomp_profile_name: str | None = flag(
        None, "linux/seccomp: default profile, relative to --seccomp_config_dir "
        "(default: the bundled default.json, modelled on Docker's)"
    )
    # Security (README "Securing a cluster"). Executor tokens are on by default, unlike Mesos:
    # any task can reach the agent's port, and without them it could speak for any executor.
    authenticate_http_executors: bool = flag(
        True, "Executors must present the JWT the agent gave them (ours: on by default)"
    )
    executor_secret_key: str | None = flag(
        None, "File holding the key that signs executor tokens (default: one made once under "
        "--work_dir)"
    )
    http_credentials: str | None = flag(
        None, "Credentials for the agent's HTTP endpoints (JSON or 'principal secret' lines)",
        secret=True,
    )
    authenticate_http_readonly: bool = flag(False, "Read-only endpoints need credentials")
    authenticate_http_readwrite: bool = flag(False, "Read-write endpoints need credentials")
    credential: str | None = flag(
        None, "The {\"principal\", \"secret\"} this agent presents to the master",
        secret=True,
    )
    acls: str | None = flag(None, "ACLs of the local authorizer (JSON or a file)")
    max_http_connections: int = flag(
        1000, "Open HTTP connections at most; more are answered 503 and closed (ours)"
    )
    http_header_timeout: Duration = flag(
        Duration(10.0), "A request's headers must arrive within this time (ours)"
    )
    quiet: bool = flag(False, "Log warnings only")
    log_dir: str | None = flag(None, "Where to write logs (stderr when unset)")
    http_command_executor: bool = flag(True, "Command executors speak the HTTP API")
    # Accepted as Mesos's (its CLI's test harness passes both); this agent keeps its runtime
    # state under --work_dir and runs no executor under a systemd unit.
    runtime_dir: str = flag("/var/run/mesos", "Mesos's runtime state directory (unused here)")
    systemd_enable_support: bool = flag(False, "Mesos's systemd integration (unused here)")
