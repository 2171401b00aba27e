"""The seam to the image provisioner (``images/provisioner.py``), chosen once at agent start.

The provisioner lives in ``images/`` (installed as ``agent_runtime.images``); the composition
root (``agent/composition.py``) builds it and hands it to the Mesos containerizer. This module
says what the containerizer needs of it and which image a container asks for.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

from agent_runtime.containerizer.containerizer import ContainerConfig, ImageRuntime
from agent_runtime.errors import FlagError, LaunchError
from agent_runtime.proto import mesos_pb2

PROVIDERS = ("docker", "appc")


class RuntimeConfig(Protocol):
    @property
    def entrypoint(self) -> tuple[str, ...]: ...
    @property
    def cmd(self) -> tuple[str, ...]: ...
    @property
    def env(self) -> tuple[str, ...]: ...
    @property
    def working_dir(self) -> str: ...
    @property
    def user(self) -> str: ...


class Provisioned(Protocol):
    @property
    def rootfs(self) -> str: ...
    @property
    def config(self) -> RuntimeConfig: ...


class Provisioner(Protocol):
    async def provision(self, container_id: str, image: str) -> Provisioned: ...
    async def destroy(self, container_id: str) -> None: ...
    async def recover(self, known: Collection[str]) -> None: ...
    async def prune_images(self, excluded: Sequence[str] = ()) -> object: ...
    async def close(self) -> None: ...


def providers(image_providers: str | None) -> list[str]:
    """The names ``--image_providers`` gives; an unknown one is a flag error."""
    names = [name.strip() for name in (image_providers or "").split(",") if name.strip()]
    unknown = [name for name in names if name not in PROVIDERS]
    if unknown:
        raise FlagError(f"--image_providers: unknown {unknown}; known: {', '.join(PROVIDERS)}")
    return names


def runtime(config: RuntimeConfig) -> ImageRuntime:
    return ImageRuntime(entrypoint=tuple(config.entrypoint), cmd=tuple(config.cmd),
                        env=tuple(config.env), working_dir=config.working_dir,
                        user=config.user)


def image_of(config: ContainerConfig) -> mesos_pb2.Image | None:
    """The image a container runs: a command task's own, else its executor's."""
    containers = [task.container for task in config.tasks if config.command_executor]
    containers.append(config.executor_info.container)
    for container in containers:
        if container.type == mesos_pb2.ContainerInfo.MESOS and container.mesos.HasField("image"):
            return container.mesos.image
    return None


def image_name(image: mesos_pb2.Image) -> str:
    if image.type == mesos_pb2.Image.APPC:
        raise LaunchError("APPC images are not supported (only --image_providers=docker): "
                          f"cannot run {image.appc.name!r}")
    if not image.docker.name:
        raise LaunchError("A DOCKER image needs docker.name")
    return image.docker.name
