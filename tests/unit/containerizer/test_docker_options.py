"""A DOCKER TaskInfo becomes the container Mesos's ``docker run`` options describe."""

from __future__ import annotations

from typing import Any

import pytest

from agent_runtime.containerizer import docker_options
from agent_runtime.containerizer.docker_engine import ContainerSpec
from agent_runtime.errors import LaunchError
from agent_runtime.proto import mesos_pb2

DockerInfo = mesos_pb2.ContainerInfo.DockerInfo
Volume = mesos_pb2.Volume
SANDBOX = "/work/slaves/S0/frameworks/F0/executors/t1/runs/c1"


def make_task(command: str | None = "echo hi", cpus: float = 1.0, mem: float | None = 128,
              **docker_fields: Any) -> mesos_pb2.TaskInfo:
    task = mesos_pb2.TaskInfo(name="t1")
    task.task_id.value = "t1"
    if command is not None:
        task.command.value = command
    resource = task.resources.add(name="cpus", type=mesos_pb2.Value.SCALAR)
    resource.scalar.value = cpus
    if mem is not None:
        resource = task.resources.add(name="mem", type=mesos_pb2.Value.SCALAR)
        resource.scalar.value = mem
    task.container.type = mesos_pb2.ContainerInfo.DOCKER
    task.container.docker.image = "busybox"
    for key, value in docker_fields.items():
        setattr(task.container.docker, key, value)
    return task


def build(task: mesos_pb2.TaskInfo, env: dict[str, str] | None = None) -> ContainerSpec:
    return docker_options.build(docker_options.TaskContainer(
        task=task, container_id="c1", agent_id="S0", framework_id="F0", executor_id="t1",
        sandbox=SANDBOX, sandbox_directory="/mnt/mesos/sandbox",
        environment=env or {"MESOS_SANDBOX": SANDBOX, "PATH": "/usr/bin", "MESOS_SLAVE_ID": "S0"},
    ))


def test_name_labels_and_defaults() -> None:
    spec = build(make_task())
    assert spec.name == "mesos-c1"
    assert spec.image == "busybox"
    assert spec.labels == {"mesos.agent_id": "S0", "mesos.framework_id": "F0",
                           "mesos.executor_id": "t1", "mesos.task_id": "t1",
                           "mesos.container_id": "c1"}
    assert spec.network_mode == "host"  # Mesos's default
    assert spec.binds == (f"{SANDBOX}:/mnt/mesos/sandbox:rw",)


@pytest.mark.parametrize(("cpus", "shares"), [(1.0, 1024), (0.5, 512), (2.25, 2304),
                                              (0.001, 2)])
def test_cpu_shares_are_1024_per_cpu_at_least_2(cpus: float, shares: int) -> None:
    assert build(make_task(cpus=cpus)).cpu_shares == shares


@pytest.mark.parametrize(("mem", "limit"), [(128, 128 << 20), (16, 32 << 20), (None, None)])
def test_memory_limit_is_mem_at_least_32_mb(mem: float | None, limit: int | None) -> None:
    assert build(make_task(mem=mem)).memory_bytes == limit


def test_shell_command_replaces_the_entrypoint() -> None:
    spec = build(make_task("echo $HOME"))
    assert (spec.entrypoint, spec.command) == (["/bin/sh"], ["-c", "echo $HOME"])


def test_non_shell_command_is_arguments_to_the_image_entrypoint() -> None:
    task = make_task("redis-server")
    task.command.shell = False
    task.command.arguments.extend(["--port", "7000"])
    spec = build(task)
    assert (spec.entrypoint, spec.command) == (None, ["redis-server", "--port", "7000"])


def test_non_shell_without_value_runs_the_image_default() -> None:
    task = make_task(None)
    task.command.shell = False
    spec = build(task)
    assert (spec.entrypoint, spec.command) == (None, None)


def test_shell_without_value_is_an_error() -> None:
    task = make_task(None)
    task.command.shell = True
    with pytest.raises(LaunchError, match="no command value"):
        build(task)


def test_environment_names_the_container_sandbox_and_keeps_the_image_path() -> None:
    task = make_task()
    task.command.environment.variables.add(name="GREETING", value="hi")
    env = build(task).environment
    assert env["MESOS_SANDBOX"] == "/mnt/mesos/sandbox"
    assert env["MESOS_CONTAINER_NAME"] == "mesos-c1"
    assert env["MESOS_SLAVE_ID"] == "S0"
    assert env["GREETING"] == "hi"
    assert "PATH" not in env


def test_bridge_port_mappings_need_the_host_ports_in_resources() -> None:
    task = make_task(network=DockerInfo.BRIDGE)
    ports = task.resources.add(name="ports", type=mesos_pb2.Value.RANGES)
    ports.ranges.range.add(begin=31000, end=31010)
    task.container.docker.port_mappings.add(host_port=31005, container_port=80)
    task.container.docker.port_mappings.add(host_port=31006, container_port=53, protocol="UDP")
    spec = build(task)
    assert spec.network_mode == "bridge"
    assert spec.port_bindings == {"80/tcp": 31005, "53/udp": 31006}
    task.container.docker.port_mappings.add(host_port=32000, container_port=81)
    with pytest.raises(LaunchError, match=r"^Port \[32000\] not included in resources$"):
        build(task)


def test_port_mappings_are_refused_on_host_networking() -> None:
    task = make_task()
    task.container.docker.port_mappings.add(host_port=31000, container_port=80)
    with pytest.raises(LaunchError, match="bridge and user-defined"):
        build(task)


def test_none_and_user_networks() -> None:
    assert build(make_task(network=DockerInfo.NONE)).network_mode == "none"
    task = make_task(network=DockerInfo.USER)
    with pytest.raises(LaunchError, match="exactly one"):
        build(task)
    task.container.network_infos.add(name="backend")
    assert build(task).network_mode == "backend"


def test_volumes() -> None:
    task = make_task()
    task.container.volumes.add(container_path="/data", host_path="/srv/data", mode=Volume.RO)
    task.container.volumes.add(container_path="cache", host_path="cache", mode=Volume.RW)
    named = task.container.volumes.add(container_path="/named", mode=Volume.RW)
    named.source.type = Volume.Source.DOCKER_VOLUME
    named.source.docker_volume.name = "vol1"
    named.source.docker_volume.driver = "local"
    spec = build(task)
    assert spec.binds[1:] == ("/srv/data:/data:ro",
                              f"{SANDBOX}/cache:/mnt/mesos/sandbox/cache:rw",
                              "vol1:/named:rw")
    assert spec.volume_driver == "local"


def test_a_relative_volume_cannot_leave_the_sandbox() -> None:
    task = make_task()
    task.container.volumes.add(container_path="/x", host_path="../../other", mode=Volume.RW)
    with pytest.raises(LaunchError, match="leaves the sandbox"):
        build(task)


def test_parameters_map_to_fields_and_unknown_ones_are_refused() -> None:
    task = make_task()
    for key, value in (("user", "nobody"), ("cap-add", "NET_ADMIN"), ("cap-add", "SYS_TIME"),
                       ("add-host", "db:10.0.0.5"), ("net", "none"), ("init", "true")):
        task.container.docker.parameters.add(key=key, value=value)
    spec = build(task)
    assert spec.user == "nobody"
    assert spec.cap_add == ("NET_ADMIN", "SYS_TIME")
    assert spec.extra_hosts == {"db": "10.0.0.5"}
    assert spec.network_mode == "none"
    assert spec.init is True
    task.container.docker.parameters.add(key="pid", value="host")
    with pytest.raises(LaunchError, match="parameter 'pid' is not supported"):
        build(task)


def test_hostname_is_refused_with_host_networking() -> None:
    task = make_task()
    task.container.hostname = "web"
    with pytest.raises(LaunchError, match="hostname"):
        build(task)
    task.container.docker.network = DockerInfo.BRIDGE
    assert build(task).hostname == "web"
