"""``--containerizers``: launches routed by container type, other calls follow the container."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence

import pytest

from agent_runtime.agent.composition import build_containerizer
from agent_runtime.agent.config import AgentConfig
from agent_runtime.containerizer.composing import ComposingContainerizer
from agent_runtime.containerizer.containerizer import ContainerConfig, Containerizer
from agent_runtime.containerizer.isolator import Limitation
from agent_runtime.containerizer.launcher import Process
from agent_runtime.errors import FlagError, LaunchError
from agent_runtime.proto import mesos_pb2


class Recorder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[tuple[str, str]] = []

    def adopt(self, container_id: str, info: mesos_pb2.ExecutorInfo, pid: int,
              start_time: float) -> Process | None:
        self.calls.append(("adopt", container_id))
        return Process(pid, start_time, asyncio.get_running_loop().create_future()) \
            if pid else None

    async def prune_images(self, excluded: Sequence[str]) -> None:
        self.calls.append(("prune_images", ",".join(excluded)))

    async def recover(self, known: Collection[str]) -> None:
        self.calls.append(("recover", ",".join(known)))

    def limitation(self, container_id: str) -> Limitation | None:
        return None

    async def launch(self, config: ContainerConfig) -> Process:
        self.calls.append(("launch", config.container_id))
        return Process(1, 0.0, asyncio.get_running_loop().create_future())

    async def destroy(self, container_id: str, process: Process, grace: float) -> None:
        self.calls.append(("destroy", container_id))

    async def cleanup(self, container_id: str) -> None:
        self.calls.append(("cleanup", container_id))

    async def usage(self, container_id: str) -> mesos_pb2.ResourceStatistics | None:
        self.calls.append(("usage", container_id))
        return None

    async def close(self) -> None:
        self.calls.append(("close", ""))


def config(container_id: str, kind: int | None) -> ContainerConfig:
    info = mesos_pb2.ExecutorInfo()
    if kind is not None:
        info.container.type = kind  # type: ignore[assignment]
    return ContainerConfig(container_id=container_id, agent_id="S0",
                           framework_info=mesos_pb2.FrameworkInfo(), executor_info=info,
                           tasks=(), command_executor=True, directory="/tmp",
                           environment={})


async def test_launch_goes_by_container_type_and_the_rest_follows() -> None:
    mesos, docker = Recorder("mesos"), Recorder("docker")
    members: dict[str, Containerizer] = {"mesos": mesos, "docker": docker}
    composing = ComposingContainerizer(members)
    await composing.recover(["c0"])
    process = await composing.launch(config("c1", mesos_pb2.ContainerInfo.DOCKER))
    await composing.launch(config("c2", mesos_pb2.ContainerInfo.MESOS))
    await composing.launch(config("c3", None))
    await composing.usage("c1")
    await composing.destroy("c1", process, 0.0)
    await composing.cleanup("c1")
    await composing.cleanup("c1")  # idempotent: the second one goes nowhere
    assert docker.calls == [("recover", "c0"), ("launch", "c1"), ("usage", "c1"),
                            ("destroy", "c1"), ("cleanup", "c1")]
    assert mesos.calls == [("recover", "c0"), ("launch", "c2"), ("launch", "c3")]


async def test_a_type_without_its_containerizer_fails_the_launch_naming_the_flag() -> None:
    composing = ComposingContainerizer({"mesos": Recorder("mesos")})
    with pytest.raises(LaunchError, match=r"No containerizer for DOCKER containers: .*"
                                          r"--containerizers=mesos; add 'docker'"):
        await composing.launch(config("c1", mesos_pb2.ContainerInfo.DOCKER))


async def test_unknown_containerizer_or_socket_url_is_a_flag_error() -> None:
    with pytest.raises(FlagError, match="unknown"):
        await build_containerizer(AgentConfig(containerizers="mesos,lxc"))
    with pytest.raises(FlagError, match="unix socket"):
        await build_containerizer(AgentConfig(containerizers="docker",
                                              docker_socket="tcp://127.0.0.1:2375"))


async def test_adoption_goes_by_the_executors_container_type_and_prunes_reach_every_member(
        ) -> None:
    mesos, docker = Recorder("mesos"), Recorder("docker")
    composing = ComposingContainerizer({"mesos": mesos, "docker": docker})
    docker_info = config("c1", mesos_pb2.ContainerInfo.DOCKER).executor_info
    adopted = composing.adopt("c1", docker_info, 4242, 1.0)
    assert adopted is not None and adopted.pid == 4242
    assert composing.adopt("c2", mesos_pb2.ExecutorInfo(), 0, 0.0) is None  # gone: not owned
    await composing.cleanup("c1")
    await composing.cleanup("c2")
    await composing.prune_images(["busybox"])
    assert docker.calls == [("adopt", "c1"), ("cleanup", "c1"), ("prune_images", "busybox")]
    assert mesos.calls == [("adopt", "c2"), ("prune_images", "busybox")]
