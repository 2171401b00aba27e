"""The provisioner seam: which image a container asks for, and flags it cannot use."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from agent_runtime.agent.composition import build_provisioner
from agent_runtime.agent.config import AgentConfig
from agent_runtime.containerizer.containerizer import ContainerConfig
from agent_runtime.containerizer.provisioning import image_name, image_of, providers
from agent_runtime.errors import FlagError, LaunchError
from agent_runtime.flags import Bytes
from agent_runtime.proto import mesos_pb2


def _config(tmp_path: Path, image_providers: str, docker_registry: str | None = None
            ) -> AgentConfig:
    return dataclasses.replace(AgentConfig(), work_dir=str(tmp_path),
                               image_providers=image_providers, docker_registry=docker_registry)


def test_a_registry_the_provisioner_cannot_use_is_a_flag_error(tmp_path: Path) -> None:
    with pytest.raises(FlagError, match="hdfs://"):
        build_provisioner(_config(tmp_path, image_providers="docker",
                                   docker_registry="hdfs://namenode/images"))
    with pytest.raises(FlagError, match="unknown"):
        providers("docker,oci")
    assert build_provisioner(_config(tmp_path, image_providers="appc")) is None


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


def test_size_caps_and_the_gc_config_reach_the_provisioner(tmp_path: Path) -> None:
    config = dataclasses.replace(
        _config(tmp_path, image_providers="docker", docker_registry=str(tmp_path)),
        image_max_layer_size=Bytes(1 << 20), image_max_size=Bytes(3 << 20),
        image_gc_config='{"image_disk_headroom": 0.25, "excluded_images": ["busybox"], '
                        '"image_disk_watch_interval": {"nanoseconds": 60000000000}}')
    provisioner: Any = build_provisioner(config)  # the images package's own class
    limits, gc = provisioner.store.limits, provisioner.gc
    assert (limits.max_layer, limits.max_image) == (1 << 20, 3 << 20)
    assert (gc.headroom, gc.interval, gc.excluded_images) == (0.25, 60.0, ("busybox",))


@pytest.mark.parametrize(("gc_config", "message"), [
    ("{", "not JSON"),
    ('{"image_disk_headroom": 2}', "image_disk_headroom must be between 0 and 1"),
    ('{"image_disk_watch_interval": 5}', "image_disk_watch_interval must be"),
    ('{"excluded_images": [{"type": "DOCKER"}]}', r"excluded_images\[0\].docker.name"),
    ("/no/such/file.json", "cannot read /no/such/file.json"),
])
def test_a_bad_image_gc_config_is_a_flag_error_naming_the_field(tmp_path: Path, gc_config: str,
                                                               message: str) -> None:
    config = dataclasses.replace(
        _config(tmp_path, image_providers="docker", docker_registry=str(tmp_path)),
        image_gc_config=gc_config)
    with pytest.raises(FlagError, match=message):
        build_provisioner(config)
