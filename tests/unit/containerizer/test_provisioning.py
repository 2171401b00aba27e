"""The provisioner seam: which image a container asks for, and flags it cannot use."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from agent_runtime.agent.config import AgentConfig
from agent_runtime.containerizer.containerizer import ContainerConfig
from agent_runtime.containerizer.provisioning import (
    create_provisioner,
    image_name,
    image_of,
    providers,
)
from agent_runtime.errors import FlagError, LaunchError
from agent_runtime.proto import mesos_pb2


def _config(tmp_path: Path, image_providers: str, docker_registry: str | None = None
            ) -> AgentConfig:
    return dataclasses.replace(AgentConfig(), work_dir=str(tmp_path),
                               image_providers=image_providers, docker_registry=docker_registry)


def test_a_registry_the_provisioner_cannot_use_is_a_flag_error(tmp_path: Path) -> None:
    with pytest.raises(FlagError, match="hdfs://"):
        create_provisioner(_config(tmp_path, image_providers="docker",
                                   docker_registry="hdfs://namenode/images"))
    with pytest.raises(FlagError, match="unknown"):
        providers(_config(tmp_path, image_providers="docker,oci"))
    assert create_provisioner(_config(tmp_path, image_providers="appc")) is None


def test_a_command_task_image_wins_and_appc_images_are_refused_by_name() -> None:
    task = mesos_pb2.TaskInfo(name="t")
    task.container.type = mesos_pb2.ContainerInfo.MESOS
    task.container.mesos.image.type = mesos_pb2.Image.DOCKER
    task.container.mesos.image.docker.name = "library/redis"
    config = ContainerConfig(container_id="c", agent_id="a",
                             framework_info=mesos_pb2.FrameworkInfo(),
                             executor_info=mesos_pb2.ExecutorInfo(), tasks=(task,),
                             command_executor=True, directory="/sandbox", environment={})
    image = image_of(config)
    assert image is not None and image_name(image) == "library/redis"
    appc = mesos_pb2.Image(type=mesos_pb2.Image.APPC)
    appc.appc.name = "coreos.com/etcd"
    with pytest.raises(LaunchError, match=r"APPC images are not supported.*etcd"):
        image_name(appc)
