"""What the agent asks of a containerizer, whichever one runs the container.

The agent decides *what* runs (executor, tasks, sandbox, environment) and hands it over as a
:class:`ContainerConfig`; a containerizer decides *how*. ``composing.py`` picks one per launch by
the container's type; everything else in the agent talks to this Protocol only (STYLE rule 6).

Life of a container, per containerizer::

    [adopt(id, info, pid, start)]* -> recover(known) -> launch(config) -> [destroy(id, process,
    grace)] -> cleanup(id)
                         `-> config.forked(process): the executor exists (pid checkpoint)

``adopt`` runs at agent start for each executor the agent's checkpoints name, before
``recover``; ``recover`` runs once, before any launch; ``known`` holds the containers whose
executors the agent adopted, and everything else the containerizer finds of its own is an
orphan. ``cleanup`` runs after the executor process has exited and is
idempotent, as is ``destroy``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from agent_runtime.containerizer.launcher import Process
from agent_runtime.containerizer.limitation import Limitation
from agent_runtime.proto import mesos_pb2


@dataclass(frozen=True)
class ImageRuntime:
    """What an image says to run, in Docker's terms (``docker/runtime`` applies it)."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()  # "NAME=value"
    working_dir: str = ""
    user: str = ""


@dataclass(frozen=True)
class ContainerConfig:
    container_id: str
    agent_id: str
    framework_info: mesos_pb2.FrameworkInfo
    executor_info: mesos_pb2.ExecutorInfo
    tasks: tuple[mesos_pb2.TaskInfo, ...]  # what the executor is started for (one for commands)
    command_executor: bool  # the agent's own executor runs ``tasks[0]``
    directory: str  # the sandbox on the host
    environment: Mapping[str, str]  # the executor's environment, built by the agent
    # Called once, as soon as the executor process exists and before ``launch`` returns (a
    # Docker launch goes on to start the container): the agent checkpoints the pid there, so
    # an agent that dies meanwhile still finds the executor (Mesos's ``pidCheckpointPath``).
    forked: Callable[[Process], None] = field(default=lambda process: None, repr=False,
                                              compare=False)
    # Set by the Mesos containerizer once the provisioner has made the image's rootfs.
    rootfs: str | None = None
    image: ImageRuntime | None = None
    # --switch_user: the user the task runs as (its command's, else its framework's); None
    # with --switch_user=false, when tasks run as the agent's user.
    user: str | None = None

    @property
    def container_info(self) -> mesos_pb2.ContainerInfo:
        """The ContainerInfo that describes this container: a command task's own, else its
        executor's (Mesos's rule for LinuxInfo and images alike)."""
        if self.command_executor and self.tasks and self.tasks[0].HasField("container"):
            return self.tasks[0].container
        return self.executor_info.container


class Containerizer(Protocol):
    def adopt(self, container_id: str, info: mesos_pb2.ExecutorInfo, pid: int,
              start_time: float) -> Process | None:
        """Agent recovery: the executor of a checkpointed container, if it still runs (a pid
        and its start time, never the pid alone); None when it is gone."""

    async def recover(self, known: Collection[str]) -> None:
        """Take stock at agent start: adopt the ``known`` containers, remove the others."""

    async def launch(self, config: ContainerConfig) -> Process:
        """Start the executor (and its container), calling ``config.forked`` once the executor
        runs; raises LaunchError, leaving nothing behind."""

    async def destroy(self, container_id: str, process: Process, grace: float) -> None:
        """Kill the executor (SIGTERM, ``grace``, SIGKILL) and tear its container down."""

    async def cleanup(self, container_id: str) -> None:
        """Release what is left of a container whose executor has exited."""

    async def usage(self, container_id: str) -> mesos_pb2.ResourceStatistics | None:
        """Resource usage now, or None when this containerizer cannot tell."""

    def limitation(self, container_id: str) -> Limitation | None:
        """The limit a container broke (and was destroyed for), asked by the agent when its
        executor exits and before ``cleanup``; None when it broke none."""

    async def prune_images(self, excluded: Sequence[str]) -> None:
        """Remove the images no container uses, except ``excluded`` (Mesos's ``pruneImages``);
        nothing when this containerizer keeps no image store of its own."""

    async def close(self) -> None:
        """Let go of connections at agent exit; containers keep running."""
