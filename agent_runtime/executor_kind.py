"""Which kind of executor runs a task: the one rule the agent and the master share.

- ``COMMAND``: the agent's own command executor, generated for a task that names no executor;
- ``DOCKER``: the same for a task whose container is DOCKER (the Docker containerizer runs it
  as its docker executor);
- ``CUSTOM``: an executor the framework brought.

A generated executor is a DEFAULT ExecutorInfo named ``Command Executor (Task: ...)`` (Mesos's
name): the agent names it so in :func:`command_executor_name`, and the name is the mark both
daemons go by. The master sees nothing else (an agent's re-registration reports ExecutorInfos).
The agent also checkpoints the kind it chose, so recovery reads it back instead of guessing;
:func:`kind_of` is the rule for what carries no checkpointed kind. Never the executor's command:
that names where the package was installed, which a reinstall changes.
"""

from __future__ import annotations

import enum

from agent_runtime.proto import mesos_pb2

COMMAND_EXECUTOR_PREFIX = "Command Executor"


class ExecutorKind(enum.Enum):
    COMMAND = "COMMAND"
    DOCKER = "DOCKER"
    CUSTOM = "CUSTOM"

    @property
    def generated(self) -> bool:
        """The agent made it for a command task (it runs ``tasks[0]``, not the framework's)."""
        return self is not ExecutorKind.CUSTOM


def command_executor_name(task_id: str, command: str) -> str:
    return f"{COMMAND_EXECUTOR_PREFIX} (Task: {task_id}) (Command: sh -c '{command}')"


def generated_for_command_task(info: mesos_pb2.ExecutorInfo) -> bool:
    """Whether ``info`` is an executor an agent made for a command task."""
    return (info.type == mesos_pb2.ExecutorInfo.DEFAULT
            and info.name.startswith(COMMAND_EXECUTOR_PREFIX))


def kind_of(info: mesos_pb2.ExecutorInfo) -> ExecutorKind:
    if not generated_for_command_task(info):
        return ExecutorKind.CUSTOM
    if info.HasField("container") and info.container.type == mesos_pb2.ContainerInfo.DOCKER:
        return ExecutorKind.DOCKER
    return ExecutorKind.COMMAND
