"""``--containerizers``: one containerizer per container type, chosen once at agent start.

A launch (and an adoption at recovery) goes to the member for its ContainerInfo type (DOCKER to
Docker, MESOS or none to ours); ``recover``, ``prune_images`` and ``close`` fan out to every
member; the other calls follow the container to the member that launched it. A type with no
member fails the launch with a message naming the flag. The members are built by the
composition root (``agent/composition.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence

from agent_runtime.containerizer.containerizer import ContainerConfig, Containerizer
from agent_runtime.containerizer.isolator import Limitation
from agent_runtime.containerizer.launcher import Process
from agent_runtime.containerizer.sessions import Session, SessionHost, SessionRequest
from agent_runtime.containerizer.task_containers import TaskGroupHost
from agent_runtime.errors import Conflict, LaunchError, NotFound
from agent_runtime.proto import mesos_pb2

ContainerType = mesos_pb2.ContainerInfo.Type
KNOWN = ("mesos", "docker")


class ComposingContainerizer:
    def __init__(self, members: dict[str, Containerizer]) -> None:
        self.members = members  # "mesos"/"docker" -> containerizer, in --containerizers order
        self._owner: dict[str, Containerizer] = {}

    def adopt(self, container_id: str, info: mesos_pb2.ExecutorInfo, pid: int,
              start_time: float) -> Process | None:
        """Agent recovery: the executor of a checkpointed container, if it still runs."""
        try:
            member = self._member_for_info(info)
        except LaunchError:
            return None
        process = member.adopt(container_id, info, pid, start_time)
        if process is not None:
            self._owner[container_id] = member
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

    async def launch_session(self, container_id: str, request: SessionRequest) -> Session:
        """Into the container, by the member that launched it."""
        member = self._owner.get(container_id)
        if member is None:
            raise NotFound(f"Container {container_id} is not running on this agent")
        if not isinstance(member, SessionHost):
            raise Conflict(f"Container {container_id}'s containerizer cannot run commands in it")
        return await member.launch_session(container_id, request)

    async def prepare_tasks(self, container_id: str, tasks: Sequence[mesos_pb2.TaskInfo]
                            ) -> None:
        """A later task group's nested containers, by the member that runs the container."""
        member = self._owner.get(container_id)
        if isinstance(member, TaskGroupHost):
            await member.prepare_tasks(container_id, tasks)

    def task_launch(self, container_id: str, task_id: str) -> str | None:
        member = self._owner.get(container_id)
        return member.task_launch(container_id, task_id) \
            if isinstance(member, TaskGroupHost) else None

    async def prune_images(self, excluded: Sequence[str]) -> None:
        await asyncio.gather(*(member.prune_images(excluded) for member in self.members.values()))

    async def close(self) -> None:
        await asyncio.gather(*(member.close() for member in self.members.values()))

