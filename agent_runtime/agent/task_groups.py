"""Handing tasks to an executor, one alone (LAUNCH) or a whole group (LAUNCH_GROUP).

Tasks wait in ``Executor.queued`` until their executor subscribes; a group's tasks wait there
too, each one under its own id (so a registration timeout or an executor exit fails each of
them), and ``Executor.groups`` remembers which ids go together. When they are sent, a group
goes out as one LAUNCH_GROUP event, as the default executor expects, never as single LAUNCHes.
A kill that reaches a group still queued kills the whole group, as Mesos's agent does.

Each task of a group is a nested container of its executor's (``containerizer/
task_containers.py``): the containerizer prepares the first group with the executor's
container and a later group here (``prepare``), and what the executor needs to start each task
rides with it in the LAUNCH_GROUP event (``send_launch``).
"""

from __future__ import annotations

from collections.abc import Iterator

from agent_runtime.agent.checkpoint import Checkpointer
from agent_runtime.agent.model import Executor, ExecutorState, FrameworkRecord
from agent_runtime.containerizer.task_containers import TaskGroupHost, with_launch_info
from agent_runtime.errors import LaunchError
from agent_runtime.ids import id_error
from agent_runtime.proto import executor_pb2, mesos_pb2

Event = executor_pb2.Event


def ids_error(tasks: list[mesos_pb2.TaskInfo], executor: mesos_pb2.ExecutorInfo) -> str | None:
    """Why a task or executor ID may not be used: both name directories (the sandbox, the
    task's checkpoints), which must never leave the work_dir. The master checks them too; the
    agent does not rely on it."""
    for what, value in [("Task ID", task.task_id.value) for task in tasks] + [
            ("Executor ID", executor.executor_id.value)]:
        problem = id_error(value)
        if problem is not None:
            return f"{what} is invalid: {problem}"
    return None


async def prepare(containerizer: object, executor: Executor,
                  tasks: list[mesos_pb2.TaskInfo]) -> str | None:
    """A later group's nested containers, before it is queued or sent; why it cannot run, or
    None (also when the containerizer nests nothing)."""
    if isinstance(containerizer, TaskGroupHost):
        try:
            await containerizer.prepare_tasks(executor.container_id, tasks)
        except (LaunchError, OSError) as exc:
            return str(exc)
    if executor.state in (ExecutorState.TERMINATING, ExecutorState.TERMINATED):
        return "Executor terminated while its task group was being prepared"
    return None


def queue(executor: Executor, tasks: list[mesos_pb2.TaskInfo], group: bool) -> None:
    """Keep ``tasks`` (a group when ``group``) until the executor subscribes."""
    ids = tuple(task.task_id.value for task in tasks)
    for task in tasks:
        executor.queued[task.task_id.value] = task
        if group:
            executor.groups[task.task_id.value] = ids


def take_queued(executor: Executor, task_id: str) -> list[mesos_pb2.TaskInfo]:
    """Remove a queued task, and with it the rest of its group; [] when it is not queued."""
    if task_id not in executor.queued:
        return []
    ids = executor.groups.pop(task_id, (task_id,))
    taken = []
    for member in ids:
        executor.groups.pop(member, None)
        task = executor.queued.pop(member, None)
        if task is not None:
            taken.append(task)
    return taken


def drain(executor: Executor) -> Iterator[tuple[list[mesos_pb2.TaskInfo], bool]]:
    """Everything queued, in order, as ``(tasks, is a group)`` launches; the queue is left
    empty."""
    while executor.queued:
        first = next(iter(executor.queued))
        group = first in executor.groups
        yield take_queued(executor, first), group


def send_launch(executor: Executor, tasks: list[mesos_pb2.TaskInfo], group: bool,
                agent_id: str, framework: FrameworkRecord | None,
                checkpointer: Checkpointer, containerizer: object = None) -> None:
    """Record ``tasks`` as launched and send them (LAUNCH, or LAUNCH_GROUP for a group, each
    task with what the executor needs to start it from ``containerizer``)."""
    checkpointed = None
    for task in tasks:
        launched = executor.launch(task, agent_id, framework.info.user if framework else None)
        if framework is not None and framework.info.checkpoint:
            # As Mesos: the task is on disk before its executor has it.
            checkpointer.task(agent_id, framework.id, executor.id, executor.container_id,
                              launched)
            checkpointed = checkpointer.writer.durable() if checkpointer.writer else None
    event = launch_event(tasks, group)
    for task in event.launch_group.task_group.tasks:
        with_launch_info(task, containerizer.task_launch(executor.container_id,
                                                         task.task_id.value)
                         if isinstance(containerizer, TaskGroupHost) else None)
    executor.send(event, after=checkpointed)


def launch_event(tasks: list[mesos_pb2.TaskInfo], group: bool) -> executor_pb2.Event:
    if not group:
        (task,) = tasks
        event = Event(type=Event.LAUNCH)
        event.launch.task.CopyFrom(task)
        return event
    event = Event(type=Event.LAUNCH_GROUP)
    event.launch_group.task_group.tasks.extend(tasks)
    return event


__all__ = ["drain", "ids_error", "launch_event", "prepare", "queue", "send_launch",
           "take_queued"]
