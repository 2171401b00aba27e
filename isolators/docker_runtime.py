"""``docker/runtime``: the image's Entrypoint, Cmd, Env, WorkingDir and User, by Mesos's rules.

The command a container with a Docker image runs (``command_for``):

- ``shell`` true (the default) with a ``value``: ``/bin/sh -c value`` in the rootfs; the image's
  Entrypoint and Cmd are ignored.
- ``shell`` false with a ``value``: that program with ``arguments`` as its argv (argv[0]
  included, as execvp takes it); Entrypoint and Cmd are ignored.
- ``shell`` false without a value: the image's Entrypoint then Cmd, with ``arguments``
  appended; an image with neither is an error.

The environment is the image's Env with the task's own variables over it; the working
directory is WorkingDir (else the sandbox); the user is the image's User.
"""

from __future__ import annotations

from agent_runtime.containerizer.containerizer import ContainerConfig, ImageRuntime
from agent_runtime.containerizer.isolator import Isolator, LaunchInfo, NestedTask
from agent_runtime.errors import LaunchError
from agent_runtime.proto import mesos_pb2


def command_for(command: mesos_pb2.CommandInfo, image: ImageRuntime) -> list[str]:
    shell = not command.HasField("shell") or command.shell
    if shell:
        if not command.value:
            raise LaunchError("A shell command (CommandInfo.shell=true) needs a value")
        return ["/bin/sh", "-c", command.value]
    if command.value:
        return [command.value, *list(command.arguments)[1:]]
    argv = [*image.entrypoint, *image.cmd]
    if not argv:
        raise LaunchError("The image has neither an Entrypoint nor a Cmd, and the task gives "
                          "no command (CommandInfo.value)")
    return [*argv, *command.arguments]


def environment_for(command: mesos_pb2.CommandInfo, image: ImageRuntime) -> dict[str, str]:
    environment = dict(entry.partition("=")[::2] for entry in image.env)
    for variable in command.environment.variables:
        if variable.type in (mesos_pb2.Environment.Variable.UNKNOWN,
                             mesos_pb2.Environment.Variable.VALUE):
            environment[variable.name] = variable.value
    return environment


class DockerRuntimeIsolator(Isolator):
    async def prepare(self, container_id: str, config: ContainerConfig) -> LaunchInfo | None:
        if config.image is None:
            return None
        # A command task runs its task's command; a custom executor runs its own.
        command = config.tasks[0].command if config.command_executor and config.tasks \
            else config.executor_info.command
        return LaunchInfo(rootfs_launch={
            "argv": command_for(command, config.image),
            "environment": environment_for(command, config.image),
            "working_dir": config.image.working_dir,
            "user": config.image.user,
        })

    async def prepare_task(self, container_id: str, task: NestedTask) -> LaunchInfo | None:
        """A group task with an image of its own runs its command as a command task would."""
        if task.image is None or task.command is None:
            return None
        return LaunchInfo(rootfs_launch={
            "argv": command_for(task.command, task.image),
            "environment": environment_for(task.command, task.image),
            "working_dir": task.image.working_dir,
            "user": task.image.user,
        })

