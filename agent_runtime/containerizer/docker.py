"""The Docker containerizer: a task whose ContainerInfo is DOCKER runs as a Docker container.

Who does what, and why (launch latency is the issue's target: LAUNCH-to-TASK_RUNNING within
1.1x of creating and starting the same container through the SDK directly):

- The **agent** (here) creates and starts the container through the SDK. The agent is
  long-lived, so ``import docker`` and the engine connection are paid once, not per task, and
  the calls run in a worker thread of the agent's event loop.
- At the same moment the agent hands the task to a **docker executor**
  (``executors/docker_executor.py``, one per task, executor id = task id, as
  ``mesos-docker-executor``): a standard-library-only ``python -S`` process that the agent
  started ahead of need (``prewarm.py``), so neither its start-up nor its CPU use falls inside
  the engine's create+start.
- The executor gets the task's LAUNCH as soon as it subscribes, while the engine is still at
  work, so TASK_STARTING and its acknowledgement (the agent forwards a task's next update only
  once the last one is acknowledged) are out of the way before the container runs. It reports
  TASK_RUNNING on the engine's ``start`` event for the container, follows the container's logs
  into the sandbox's ``stdout``/``stderr``, blocks on the engine's ``wait`` (no polling) for the
  exit code, reads ``State.OOMKilled``, and reports the terminal state. A KILL is a
  ``docker stop`` with the grace period, done by the executor. If the container cannot be
  created or started, the agent fails the task with the engine's reason and kills the executor.
- When the executor exits, the agent removes the container (``cleanup``). Mesos keeps it for
  ``--docker_remove_delay`` (6 hours); we remove it at once.

Mesos's executor does ``docker run`` itself, so its launch pays the executor's start-up and the
engine's work one after the other; that is the difference here. The image is pulled (or loaded
from ``--docker_registry`` tarballs) before the container is created, only when missing or when
``force_pull_image`` says so, as Mesos does before it starts its executor.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import sys
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from agent_runtime.containerizer import docker_options
from agent_runtime.containerizer.containerizer import ContainerConfig
from agent_runtime.containerizer.docker_engine import (
    LABEL_AGENT,
    ContainerSpec,
    DockerEngine,
    DockerEngineError,
    ImageNotFound,
    ManagedContainer,
)
from agent_runtime.containerizer.docker_images import ImageFetcher
from agent_runtime.containerizer.docker_sessions import DockerSession
from agent_runtime.containerizer.isolator import Limitation
from agent_runtime.containerizer.launcher import DEFAULT_PATH, PosixLauncher, Process
from agent_runtime.containerizer.prewarm import PrewarmedExecutors
from agent_runtime.containerizer.sessions import Session, SessionRequest
from agent_runtime.errors import LaunchError, NotFound
from agent_runtime.proto import mesos_pb2

log = logging.getLogger(__name__)

_EXECUTOR_SPEC = importlib.util.find_spec("agent_runtime.executors.docker_executor")
assert _EXECUTOR_SPEC is not None and _EXECUTOR_SPEC.origin is not None
DOCKER_EXECUTOR: str = _EXECUTOR_SPEC.origin
# The executor imports its HTTP client from the command executor, so it is imported as part of
# the `executors` package: argv[1] is the folder that holds that package.
_EXECUTOR_STUB = ("import sys; sys.path[0] = sys.argv[1]; from executors import docker_executor; "
                  "sys.exit(docker_executor.main())")


@dataclass(frozen=True)
class DockerConfig:
    """What the agent's flags say about Docker containers (built by ``agent/composition.py``)."""

    registry: str | None = None  # --docker_registry: tarballs to load, or where to pull
    docker_config: str | None = None  # --docker_config: a path or the JSON itself
    sandbox_directory: str = "/mnt/mesos/sandbox"  # --sandbox_directory
    stop_timeout: float = 0.0  # --docker_stop_timeout, seconds
    kill_orphans: bool = True  # --docker_kill_orphans
    # The id this agent had before it restarted (None on a first start). Agents may share one
    # engine, so a container labelled with another agent's id is that agent's, never our
    # orphan (Mesos put the agent id in the name for the same reason).
    agent_id: str | None = None


class DockerContainerizer:
    def __init__(self, config: DockerConfig, engine: DockerEngine,
                 launcher: PosixLauncher) -> None:
        self.config = config
        self.engine = engine
        self.launcher = launcher
        self.images = ImageFetcher(engine, config.registry, config.docker_config)
        self.containers: dict[str, ContainerSpec] = {}  # container id -> what we created
        self.cpus: dict[str, float] = {}  # container id -> the task's cpus, for usage()
        self.starting: dict[str, asyncio.Future[None]] = {}  # container id -> create+start
        self.prewarmed = PrewarmedExecutors(launcher, self._executor_argv(),
                                            {"PATH": os.environ.get("PATH", DEFAULT_PATH)})

    @staticmethod
    def _executor_argv() -> list[str]:
        return [sys.executable, "-S", "-c", _EXECUTOR_STUB,
                os.path.dirname(os.path.dirname(DOCKER_EXECUTOR))]

    def adopt(self, container_id: str, info: mesos_pb2.ExecutorInfo, pid: int,
              start_time: float) -> Process | None:
        # The executor goes on watching its container; ``recover`` finds the container by name.
        return self.launcher.adopt(pid, start_time)

    async def recover(self, known: Collection[str]) -> None:
        for container in await self.engine.managed(docker_options.NAME_PREFIX):
            container_id = container.name[len(docker_options.NAME_PREFIX):]
            if container_id in known:
                # Its executor was adopted (agent/recovery.py) and goes on watching it; the name
                # is enough to remove it later. Its limits are not restored: usage() reports
                # none for it (an open issue).
                self.containers[container_id] = ContainerSpec(name=container.name, image="")
                continue
            if not self.config.kill_orphans or not self._ours(container):
                continue
            log.info("removing orphan container %s (%s)", container.name, container.id[:12])
            try:
                await self.engine.remove(container.id)
            except DockerEngineError as exc:
                # An orphan the engine will not remove now is no reason to stay down: the
                # next recovery tries again.
                log.warning("cannot remove orphan container %s: %s", container.name, exc)
        self.prewarmed.refill()

    def _ours(self, container: ManagedContainer) -> bool:
        # Unlabelled ``mesos-`` containers stay ours to remove: we label every one we create,
        # so no live agent of ours claims them.
        agent_id = container.labels.get(LABEL_AGENT)
        return agent_id is None or agent_id == self.config.agent_id

    async def launch(self, config: ContainerConfig) -> Process:
        if not config.command_executor or len(config.tasks) != 1:
            raise LaunchError("The Docker containerizer runs command tasks only; custom "
                              "executors in Docker containers are not supported yet")
        task = config.tasks[0]
        spec = docker_options.build(docker_options.TaskContainer(
            task=task, container_id=config.container_id, agent_id=config.agent_id,
            framework_id=config.framework_info.id.value,
            executor_id=config.executor_info.executor_id.value, sandbox=config.directory,
            sandbox_directory=self.config.sandbox_directory, environment=config.environment,
        ))
        self.containers[config.container_id] = spec
        self.cpus[config.container_id] = docker_options.scalar(task, "cpus")
        started = asyncio.ensure_future(self._start(spec, task.container.docker.force_pull_image))
        self.starting[config.container_id] = started
        # Let the create reach the engine first; the executor then works alongside it.
        await asyncio.sleep(0)
        env = dict(config.environment, MESOS_CONTAINER_NAME=spec.name,
                   MESOS_DOCKER_SOCKET=self.engine.socket)
        process = self.prewarmed.take(env, config.directory)
        if process is None:
            try:
                process = await self.launcher.launch(
                    self._executor_argv(), env, config.directory,
                    os.path.join(config.directory, "stdout"),
                    os.path.join(config.directory, "stderr"),
                )
            except LaunchError:
                with contextlib.suppress(LaunchError):
                    await started
                await self.cleanup(config.container_id)
                raise
        # The executor (a pre-started one included) is the process the agent adopts after a
        # restart: its pid is checkpointed now, not once the container runs, or an agent that
        # dies in between (an image load) would lose an executor that already has its task.
        config.forked(process)
        try:
            await started
        except LaunchError:
            await self.launcher.destroy(process, 0.0)
            await self.cleanup(config.container_id)
            raise
        finally:
            self.starting.pop(config.container_id, None)
            self.prewarmed.refill_later()
        return process

    async def _start(self, spec: ContainerSpec, force_pull: bool) -> None:
        if force_pull:
            await self.images.ensure(spec.image, force_pull=True)
        try:
            container = await self.engine.create(spec)
        except ImageNotFound:
            # Optimistic: one engine round trip fewer when the image is there, the usual case.
            await self.images.ensure(spec.image, force_pull=False)
            container = await self.engine.create(spec)
        try:
            await self.engine.start(container)
        except DockerEngineError:
            await self.engine.remove(container)
            raise

    async def destroy(self, container_id: str, process: Process, grace: float) -> None:
        await self.launcher.destroy(process, grace)
        await self.cleanup(container_id)

    async def cleanup(self, container_id: str) -> None:
        starting = self.starting.get(container_id)
        if starting is not None:
            # The executor can be gone before its container is up (a kill during an image
            # load): let the start finish, or it would create a container nobody removes.
            with contextlib.suppress(LaunchError):
                await asyncio.shield(starting)
        spec = self.containers.pop(container_id, None)
        self.cpus.pop(container_id, None)
        if spec is None:
            return
        try:
            if self.config.stop_timeout > 0:
                await self.engine.stop(spec.name, self.config.stop_timeout)
            await self.engine.remove(spec.name)
        except DockerEngineError as exc:
            log.warning("could not remove container %s: %s", spec.name, exc)

    async def launch_session(self, container_id: str, request: SessionRequest) -> Session:
        """``docker exec`` into the task's running container (``docker_sessions.py``)."""
        spec = self.containers.get(container_id)
        if spec is None or container_id in self.starting:
            raise NotFound(f"Container {container_id} is not running on this agent")
        return await DockerSession.start(self.engine, spec.name, request)

    async def prune_images(self, excluded: Sequence[str]) -> None:
        return None  # the engine keeps its images itself, as Mesos's Docker containerizer

    async def usage(self, container_id: str) -> mesos_pb2.ResourceStatistics | None:
        spec = self.containers.get(container_id)
        if spec is None:
            return None
        try:
            stats = await self.engine.stats(spec.name)
        except DockerEngineError:
            return None
        return resource_statistics(stats, spec, self.cpus.get(container_id, 0.0))

    def limitation(self, container_id: str) -> Limitation | None:
        return None  # Docker enforces its limits itself; an OOM shows as the exit status

    async def close(self) -> None:
        await self.prewarmed.close()
        self.engine.close()


def resource_statistics(stats: dict[str, Any], spec: ContainerSpec, cpus: float
                        ) -> mesos_pb2.ResourceStatistics:
    """The stats API's answer (cgroup v1 field names) as Mesos's ResourceStatistics."""
    out = mesos_pb2.ResourceStatistics(timestamp=time.time(), cpus_limit=cpus)
    cpu = stats.get("cpu_stats") or {}
    usage = cpu.get("cpu_usage") or {}
    if "usage_in_usermode" in usage:
        out.cpus_user_time_secs = usage["usage_in_usermode"] / 1e9
        out.cpus_system_time_secs = usage.get("usage_in_kernelmode", 0) / 1e9
    throttling = cpu.get("throttling_data") or {}
    if throttling:
        out.cpus_nr_periods = int(throttling.get("periods", 0))
        out.cpus_nr_throttled = int(throttling.get("throttled_periods", 0))
        out.cpus_throttled_time_secs = throttling.get("throttled_time", 0) / 1e9
    memory = stats.get("memory_stats") or {}
    if "usage" in memory:
        out.mem_total_bytes = int(memory["usage"])
    if spec.memory_bytes is not None:
        out.mem_limit_bytes = spec.memory_bytes
    detail = memory.get("stats") or {}
    for ours, theirs in (("mem_rss_bytes", "rss"), ("mem_cache_bytes", "cache"),
                         ("mem_mapped_file_bytes", "mapped_file"), ("mem_swap_bytes", "swap")):
        if theirs in detail:
            setattr(out, ours, int(detail[theirs]))
    pids = stats.get("pids_stats") or {}
    if "current" in pids:
        out.processes = int(pids["current"])
    networks = stats.get("networks") or {}
    if networks:
        out.net_rx_bytes = sum(int(n.get("rx_bytes", 0)) for n in networks.values())
        out.net_tx_bytes = sum(int(n.get("tx_bytes", 0)) for n in networks.values())
        out.net_rx_packets = sum(int(n.get("rx_packets", 0)) for n in networks.values())
        out.net_tx_packets = sum(int(n.get("tx_packets", 0)) for n in networks.values())
    return out
