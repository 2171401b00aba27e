"""``--containerizers``: one containerizer per container type, chosen once at agent start.

A launch goes to the member for its ContainerInfo type (DOCKER to Docker, MESOS or none to ours);
``recover`` fans out to every member; the other calls follow the container to the member that
launched it. A type with no member fails the launch with a message naming the flag.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection

from agent_runtime.agent.config import AgentConfig
from agent_runtime.containerizer.containerizer import ContainerConfig, Containerizer
from agent_runtime.containerizer.forkserver import ForkServer
from agent_runtime.containerizer.isolation import create_isolators
from agent_runtime.containerizer.isolator import Limitation
from agent_runtime.containerizer.launcher import PosixLauncher, Process
from agent_runtime.containerizer.mesos import MesosContainerizer
from agent_runtime.containerizer.provisioning import create_provisioner, providers
from agent_runtime.errors import FlagError, LaunchError
from agent_runtime.proto import mesos_pb2

ContainerType = mesos_pb2.ContainerInfo.Type
KNOWN = ("mesos", "docker")


class ComposingContainerizer:
    def __init__(self, members: dict[str, Containerizer],
                 launcher: PosixLauncher | None = None) -> None:
        self.members = members  # "mesos"/"docker" -> containerizer, in --containerizers order
        self.launcher = launcher or PosixLauncher()
        self._owner: dict[str, Containerizer] = {}

    def adopt(self, container_id: str, info: mesos_pb2.ExecutorInfo, pid: int,
              start_time: float) -> Process | None:
        """Agent recovery: the executor of a checkpointed container, if it still runs."""
        try:
            member = self._member_for_info(info)
        except LaunchError:
            return None
        process = self.launcher.adopt(pid, start_time)
        if process is not None:
            self._owner[container_id] = member
            if isinstance(member, MesosContainerizer):
                member.adopted(container_id, process)
        return process

    def _member_for(self, config: ContainerConfig) -> Containerizer:
        return self._member_for_info(config.executor_info)

    def _member_for_info(self, info: mesos_pb2.ExecutorInfo) -> Containerizer:
        kind = "docker" if (info.HasField("container")
                            and info.container.type == mesos_pb2.ContainerInfo.DOCKER) else "mesos"
        member = self.members.get(kind)
        if member is None:
            raise LaunchError(
                f"No containerizer for {kind.upper()} containers: this agent runs with "
                f"--containerizers={','.join(self.members)}; add '{kind}' to run this task"
            )
        return member

    async def recover(self, known: Collection[str]) -> None:
        await asyncio.gather(*(member.recover(known) for member in self.members.values()))

    async def launch(self, config: ContainerConfig) -> Process:
        member = self._member_for(config)
        self._owner[config.container_id] = member
        try:
            return await member.launch(config)
        except BaseException:
            self._owner.pop(config.container_id, None)
            raise

    async def destroy(self, container_id: str, process: Process, grace: float) -> None:
        member = self._owner.get(container_id)
        if member is not None:
            await member.destroy(container_id, process, grace)

    async def cleanup(self, container_id: str) -> None:
        member = self._owner.pop(container_id, None)
        if member is not None:
            await member.cleanup(container_id)

    async def usage(self, container_id: str) -> mesos_pb2.ResourceStatistics | None:
        member = self._owner.get(container_id)
        return None if member is None else await member.usage(container_id)

    def limitation(self, container_id: str) -> Limitation | None:
        member = self._owner.get(container_id)
        return None if member is None else member.limitation(container_id)

    async def close(self) -> None:
        await asyncio.gather(*(member.close() for member in self.members.values()))


async def create_containerizer(config: AgentConfig) -> ComposingContainerizer:
    """Build the members ``--containerizers`` names; Docker needs an engine that answers."""
    names = [name.strip() for name in config.containerizers.split(",") if name.strip()]
    unknown = [name for name in names if name not in KNOWN]
    if unknown or not names:
        raise FlagError(f"--containerizers: unknown {unknown or names}; known: {', '.join(KNOWN)}")
    launcher = PosixLauncher()
    members: dict[str, Containerizer] = {}
    for name in dict.fromkeys(names):
        if name == "mesos":
            image_providers = providers(config)
            members[name] = MesosContainerizer(
                launcher, create_isolators(config, image_providers),
                provisioner=create_provisioner(config), fork_server=ForkServer(launcher))
            continue
        # Imported here: the Docker SDK costs start-up time that agents without Docker skip.
        from agent_runtime.containerizer.docker import DockerContainerizer
        from agent_runtime.containerizer.docker_engine import DockerEngine, DockerEngineError

        socket = config.docker_socket.removeprefix("unix://")
        if "://" in socket:
            # The docker executor reaches the engine too, over a unix socket only.
            raise FlagError(f"--docker_socket must be a unix socket path, not {socket!r}")
        try:
            engine = await DockerEngine.connect(socket)
        except DockerEngineError as exc:
            raise FlagError(f"--containerizers={config.containerizers}: {exc}") from exc
        members[name] = DockerContainerizer(config, engine, launcher)
    return ComposingContainerizer(members, launcher)
