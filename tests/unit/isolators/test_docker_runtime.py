"""``docker/runtime``: which command, environment, directory and user an image container gets."""

from __future__ import annotations

import pytest

from agent_runtime.containerizer.containerizer import ContainerConfig, ImageRuntime
from agent_runtime.errors import LaunchError
from agent_runtime.isolators.docker_runtime import (
    DockerRuntimeIsolator,
    command_for,
    environment_for,
)
from agent_runtime.proto import mesos_pb2

REDIS = ImageRuntime(cmd=("redis-server", "/etc/redis/redis.conf"), env=("PATH=/usr/bin",
                                                                          "A=image"),
                     working_dir="/data", user="redis")
ENTRYPOINT = ImageRuntime(entrypoint=("/entry.sh", "-v"), cmd=("serve",))


def command(value: str | None = None, shell: bool | None = None,
            arguments: tuple[str, ...] = (), **env: str) -> mesos_pb2.CommandInfo:
    info = mesos_pb2.CommandInfo(arguments=list(arguments))
    if value is not None:
        info.value = value
    if shell is not None:
        info.shell = shell
    for name, value_ in env.items():
        info.environment.variables.add(name=name, value=value_)
    return info


def test_a_shell_command_replaces_entrypoint_and_cmd() -> None:
    assert command_for(command("echo hi"), ENTRYPOINT) == ["/bin/sh", "-c", "echo hi"]
    assert command_for(command("echo hi", shell=True), REDIS) == ["/bin/sh", "-c", "echo hi"]


def test_a_value_without_shell_is_the_program_and_arguments_its_argv() -> None:
    assert command_for(command("/bin/ls", shell=False, arguments=("ls", "-l")), ENTRYPOINT) \
        == ["/bin/ls", "-l"]


def test_no_value_runs_entrypoint_then_cmd_with_arguments_appended() -> None:
    assert command_for(command(shell=False), REDIS) == ["redis-server", "/etc/redis/redis.conf"]
    assert command_for(command(shell=False, arguments=("--port", "6380")), REDIS) == \
        ["redis-server", "/etc/redis/redis.conf", "--port", "6380"]
    assert command_for(command(shell=False), ENTRYPOINT) == ["/entry.sh", "-v", "serve"]


def test_nothing_to_run_is_a_launch_error_that_says_so() -> None:
    with pytest.raises(LaunchError, match="neither an Entrypoint nor a Cmd"):
        command_for(command(shell=False), ImageRuntime())
    with pytest.raises(LaunchError, match="needs a value"):
        command_for(command(), REDIS)


def test_the_task_environment_wins_over_the_image_one() -> None:
    assert environment_for(command("x", A="task", B="task"), REDIS) == \
        {"PATH": "/usr/bin", "A": "task", "B": "task"}


async def test_prepare_gives_the_rootfs_launch_for_an_image_container_only() -> None:
    task = mesos_pb2.TaskInfo(name="t", command=command(shell=False))
    config = ContainerConfig(
        container_id="c", agent_id="a", framework_info=mesos_pb2.FrameworkInfo(),
        executor_info=mesos_pb2.ExecutorInfo(), tasks=(task,), command_executor=True,
        directory="/sandbox", environment={}, rootfs="/rootfs", image=REDIS)
    info = await DockerRuntimeIsolator().prepare("c", config)
    assert info is not None
    assert dict(info.rootfs_launch) == {
        "argv": ["redis-server", "/etc/redis/redis.conf"],
        "environment": {"PATH": "/usr/bin", "A": "image"},
        "working_dir": "/data", "user": "redis"}
    without_image = ContainerConfig(
        container_id="c", agent_id="a", framework_info=mesos_pb2.FrameworkInfo(),
        executor_info=mesos_pb2.ExecutorInfo(), tasks=(task,), command_executor=True,
        directory="/sandbox", environment={})
    assert await DockerRuntimeIsolator().prepare("c", without_image) is None
