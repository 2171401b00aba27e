"""The one seam between the agent and the Docker Engine: the SDK calls we use and nothing more.

Every method is a coroutine that runs its blocking ``docker`` SDK call in a worker thread, so the
agent's event loop never waits on the engine. Every SDK or transport error leaves this module as a
:class:`DockerEngineError` (a :class:`LaunchError`, so a failed launch becomes TASK_FAILED), with
the engine's own explanation in the message; nothing above this module imports ``docker``.

We use the low-level ``APIClient``: the high-level ``containers.create`` inspects every container
it creates, one more engine round trip on the launch path.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import docker
import docker.auth
import requests
from docker import errors as sdk_errors

from agent_runtime.docker_config import DockerConfigError
from agent_runtime.docker_config import load as load_docker_config
from agent_runtime.errors import LaunchError

T = TypeVar("T")

# Labels we put on every container (Mesos's docker containerizer names these in its docs).
LABEL_AGENT = "mesos.agent_id"
LABEL_FRAMEWORK = "mesos.framework_id"
LABEL_EXECUTOR = "mesos.executor_id"
LABEL_TASK = "mesos.task_id"
LABEL_CONTAINER = "mesos.container_id"


class DockerEngineError(LaunchError):
    """The engine refused a call or could not be reached."""


class ImageNotFound(DockerEngineError):
    """The image is not in the engine's local store (or the registry does not have it)."""


class ContainerNotFound(DockerEngineError):
    """No container has that name or id."""


@dataclass(frozen=True)
class ContainerSpec:
    """What ``create`` needs, in our terms; ``docker_options`` builds it from a TaskInfo."""

    name: str
    image: str
    command: list[str] | None = None  # None: the image's CMD
    entrypoint: list[str] | None = None  # None: the image's ENTRYPOINT
    environment: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    network_mode: str = "host"
    cpu_shares: int = 1024
    memory_bytes: int | None = None
    binds: tuple[str, ...] = ()  # "source:target:rw|ro"
    port_bindings: Mapping[str, int] = field(default_factory=dict)  # "80/tcp" -> host port
    privileged: bool = False
    hostname: str | None = None
    volume_driver: str | None = None
    user: str | None = None
    working_dir: str | None = None
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    dns: tuple[str, ...] = ()
    extra_hosts: Mapping[str, str] = field(default_factory=dict)
    init: bool | None = None
    read_only: bool | None = None
    shm_size: str | None = None


@dataclass(frozen=True)
class ManagedContainer:
    id: str
    name: str
    labels: Mapping[str, str]


def _explain(exc: BaseException) -> str:
    if isinstance(exc, sdk_errors.APIError) and exc.explanation:
        return str(exc.explanation)
    return str(exc) or type(exc).__name__


class DockerEngine:
    """One SDK client for the agent's life; its connection pool is shared by the worker threads."""

    def __init__(self, client: docker.APIClient, socket: str) -> None:
        self._client = client
        self.socket = socket
        self.api_version = str(client.api_version)

    @classmethod
    async def connect(cls, socket: str, timeout: float = 60.0) -> DockerEngine:
        """Reach the engine at a unix socket path (or a ``unix://``/``tcp://`` URL)."""
        url = socket if "://" in socket else f"unix://{socket}"

        def build() -> docker.APIClient:
            # version="auto" asks the engine which API version to speak (one GET /version).
            return docker.APIClient(base_url=url, version="auto", timeout=int(timeout))

        client = await cls._run(f"connect to the Docker engine at {url}", build)
        return cls(client, socket)

    @staticmethod
    async def _run(what: str, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return await asyncio.to_thread(call, *args, **kwargs)
        except sdk_errors.ImageNotFound as exc:
            raise ImageNotFound(f"{what}: {_explain(exc)}") from exc
        except sdk_errors.NotFound as exc:
            raise ContainerNotFound(f"{what}: {_explain(exc)}") from exc
        except (sdk_errors.DockerException, requests.RequestException, OSError) as exc:
            raise DockerEngineError(f"Failed to {what}: {_explain(exc)}") from exc

    def close(self) -> None:
        self._client.close()

    # Images ------------------------------------------------------------------------------
    async def has_image(self, reference: str) -> bool:
        try:
            await self._run(f"inspect image '{reference}'", self._client.inspect_image, reference)
        except (ImageNotFound, ContainerNotFound):
            return False
        return True

    async def pull(self, reference: str, auth: Mapping[str, str] | None) -> None:
        """``docker pull``: the SDK splits ``[registry/]repo[:tag|@digest]`` itself."""

        def pull() -> None:
            # The engine reports most failures inside the progress stream, not as an HTTP error.
            for message in self._client.pull(reference, stream=True, decode=True,
                                             auth_config=dict(auth) if auth else None):
                if isinstance(message, dict) and message.get("error"):
                    raise sdk_errors.APIError(str(message["error"]))

        await self._run(f"pull image '{reference}'", pull)

    async def load(self, path: str) -> list[str]:
        """``docker load`` a tarball; returns the references it brought in."""

        def load() -> list[str]:
            loaded: list[str] = []
            with open(path, "rb") as archive:
                for message in self._client.load_image(archive):  # type: ignore[no-untyped-call]
                    if message.get("error"):
                        raise sdk_errors.APIError(str(message["error"]))
                    stream = str(message.get("stream", ""))
                    for prefix in ("Loaded image: ", "Loaded image ID: "):
                        if stream.startswith(prefix):
                            loaded.append(stream[len(prefix):].strip())
            return loaded

        return await self._run(f"load image archive '{path}'", load)

    async def tag(self, source: str, repository: str, tag: str) -> None:
        await self._run(f"tag image '{source}' as '{repository}:{tag}'", self._client.tag,
                        source, repository, tag)

    # Containers --------------------------------------------------------------------------
    async def create(self, spec: ContainerSpec) -> str:
        """Create (not start) the container; raises :class:`ImageNotFound` for a missing image."""
        client = self._client

        def create() -> str:
            host_config = client.create_host_config(
                network_mode=spec.network_mode,
                cpu_shares=spec.cpu_shares,
                mem_limit=spec.memory_bytes,
                # Memory and swap together: the task's `mem` is its whole allowance.
                memswap_limit=spec.memory_bytes,
                binds=list(spec.binds) or None,
                port_bindings={k: v for k, v in spec.port_bindings.items()} or None,
                privileged=spec.privileged,
                volume_driver=spec.volume_driver,
                cap_add=list(spec.cap_add) or None,
                cap_drop=list(spec.cap_drop) or None,
                dns=list(spec.dns) or None,
                extra_hosts=dict(spec.extra_hosts) or None,
                init=spec.init,
                read_only=spec.read_only,
                shm_size=spec.shm_size,
            )
            created = client.create_container(
                spec.image, command=spec.command, entrypoint=spec.entrypoint,
                environment=dict(spec.environment), labels=dict(spec.labels), name=spec.name,
                hostname=spec.hostname, user=spec.user, working_dir=spec.working_dir,
                ports=[int(p.split("/")[0]) for p in spec.port_bindings] or None,
                host_config=host_config, use_config_proxy=False,
            )
            return str(created["Id"])

        return await self._run(f"create container '{spec.name}' from '{spec.image}'", create)

    async def start(self, container: str) -> None:
        await self._run(f"start container '{container}'", self._client.start, container)

    async def stop(self, container: str, timeout: float) -> None:
        """``docker stop -t``: SIGTERM (or the image's stop signal), SIGKILL after ``timeout``."""
        # The engine takes whole seconds; round up so a grace period is never cut short.
        seconds = max(0, int(-(-timeout // 1)))
        await self._run(f"stop container '{container}'", self._client.stop, container,
                        timeout=seconds)

    async def remove(self, container: str) -> None:
        """Force-remove (kills a running one); a container that is already gone, or that the
        engine is already removing (for another client: 409 Conflict), is fine."""

        def remove() -> None:
            try:
                self._client.remove_container(container, force=True)
            except sdk_errors.APIError as exc:
                if exc.status_code != 409 or "already in progress" not in _explain(exc):
                    raise

        with contextlib.suppress(ContainerNotFound):
            await self._run(f"remove container '{container}'", remove)

    async def managed(self, prefix: str) -> list[ManagedContainer]:
        """Every container (running or not) whose name starts with ``prefix``."""
        listed = await self._run(
            "list containers", self._client.containers, all=True,
            filters={"name": f"^/{prefix}"},
        )
        out = []
        for item in listed:
            names = [str(n).lstrip("/") for n in item.get("Names") or []]
            name = next((n for n in names if n.startswith(prefix)), None)
            if name is not None:
                out.append(ManagedContainer(str(item["Id"]), name, dict(item.get("Labels") or {})))
        return out

    async def stats(self, container: str) -> dict[str, Any]:
        """One sample of the stats API (``one_shot``: no second sample for the cpu delta)."""
        stats: dict[str, Any] = await self._run(
            f"read statistics of container '{container}'", self._client.stats, container,
            stream=False, one_shot=True,
        )
        return stats

    # Exec sessions ---------------------------------------------------------------------------
    async def exec_create(self, container: str, argv: list[str], *, tty: bool,
                          environment: Mapping[str, str], user: str | None) -> str:
        """A command to run in the running ``container`` (``docker exec``), stdin open."""
        created: dict[str, Any] = await self._run(
            f"create an exec in container '{container}'", self._client.exec_create, container,
            argv, stdin=True, tty=tty, environment=dict(environment), user=user or "")
        return str(created["Id"])

    async def exec_attach(self, exec_id: str, tty: bool) -> socket.socket:
        """Start the exec and hand over its hijacked connection, non-blocking: stdin goes in,
        output comes out (multiplexed in 8-byte framed blocks unless ``tty``)."""
        raw: Any = await self._run(f"start exec '{exec_id[:12]}'", self._client.exec_start,
                                   exec_id, tty=tty, socket=True)
        # The SDK wraps the socket in a SocketIO for unix sockets; the socket is what we drive.
        sock: socket.socket = raw._sock if isinstance(raw, socket.SocketIO) else raw  # type: ignore[attr-defined]
        sock.setblocking(False)
        return sock

    async def exec_resize(self, exec_id: str, rows: int, columns: int) -> None:
        await self._run(f"resize exec '{exec_id[:12]}'", self._client.exec_resize, exec_id,
                        height=rows, width=columns)

    async def exec_inspect(self, exec_id: str) -> dict[str, Any]:
        found: dict[str, Any] = await self._run(f"inspect exec '{exec_id[:12]}'",
                                                self._client.exec_inspect, exec_id)
        return found


def registry_auth(docker_config: str | None, registry: str) -> dict[str, str] | None:
    """Credentials for ``registry`` from ``--docker_config`` (a path or the JSON itself)."""
    try:
        loaded = load_docker_config(docker_config)
    except DockerConfigError as exc:
        raise DockerEngineError(str(exc)) from exc
    if loaded is None:
        return None
    try:
        config = docker.auth.load_config(config_dict=loaded)
        resolved = config.resolve_authconfig(registry)
    except (sdk_errors.DockerException, ValueError, TypeError) as exc:
        raise DockerEngineError(f"--docker_config: {_explain(exc)}") from exc
    if not resolved:
        return None
    return {key: str(value) for key, value in resolved.items() if isinstance(value, str)}
