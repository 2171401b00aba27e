"""The executor a task runs in: its own (a custom executor), or the command executor the agent
generates for it, as Mesos does."""

from __future__ import annotations

import shlex

from agent_runtime.containerizer.mesos import COMMAND_EXECUTOR
from agent_runtime.executor_kind import command_executor_name
from agent_runtime.proto import mesos_pb2
from agent_runtime.resources import Resources

# Mesos adds this much on top of a command task for its executor (DEFAULT_EXECUTOR_CPUS/MEM).
EXECUTOR_CPUS = 0.1
EXECUTOR_MEM = 32.0


def executor_info_for(framework_id: str, task: mesos_pb2.TaskInfo) -> mesos_pb2.ExecutorInfo:
    """The task's own executor, or the command executor Mesos would generate for it."""
    if task.HasField("executor"):
        info = mesos_pb2.ExecutorInfo()
        info.CopyFrom(task.executor)
        info.framework_id.value = framework_id
        return info
    info = mesos_pb2.ExecutorInfo(type=mesos_pb2.ExecutorInfo.DEFAULT)
    info.executor_id.value = task.task_id.value
    info.framework_id.value = framework_id
    command = task.command.value if task.command.shell else shlex.join(
        task.command.arguments or [task.command.value]
    )
    info.name = command_executor_name(task.task_id.value, command)
    info.source = task.task_id.value
    info.command.value = COMMAND_EXECUTOR
    info.resources.extend(
        (Resources.from_proto(task.resources)
         + Resources.scalar_of("cpus", EXECUTOR_CPUS)
         + Resources.scalar_of("mem", EXECUTOR_MEM)).to_proto()
    )
    if task.HasField("container"):
        info.container.CopyFrom(task.container)
    return info
