"""One rule for "which executor is the agent's own": the name the agent gives its command
executors is the one the master and recovery go by."""

from __future__ import annotations

from agent_runtime.agent.supervisor import executor_info_for
from agent_runtime.executor_kind import ExecutorKind, generated_for_command_task, kind_of
from agent_runtime.proto import mesos_pb2


def _task(*, docker: bool = False, executor: bool = False) -> mesos_pb2.TaskInfo:
    task = mesos_pb2.TaskInfo(name="t")
    task.task_id.value = "t1"
    task.command.value = "echo hi"
    if docker:
        task.container.type = mesos_pb2.ContainerInfo.DOCKER
        task.container.docker.image = "alpine"
    if executor:
        task.executor.executor_id.value = "e1"
        task.executor.command.value = "./run-executor"
    return task


def test_what_the_agent_generates_the_rule_recognises() -> None:
    command = executor_info_for("F", _task())
    docker = executor_info_for("F", _task(docker=True))
    custom = executor_info_for("F", _task(executor=True))
    assert generated_for_command_task(command) and generated_for_command_task(docker)
    assert not generated_for_command_task(custom)
    assert [kind_of(i) for i in (command, docker, custom)] == [
        ExecutorKind.COMMAND, ExecutorKind.DOCKER, ExecutorKind.CUSTOM]
    assert ExecutorKind.DOCKER.generated and not ExecutorKind.CUSTOM.generated


def test_the_command_path_plays_no_part() -> None:
    info = executor_info_for("F", _task())
    info.command.value = "/somewhere/else/after/a/reinstall/command.py"
    assert kind_of(info) is ExecutorKind.COMMAND


def test_a_custom_executor_must_be_default_and_so_named_to_pass_for_the_agents() -> None:
    info = mesos_pb2.ExecutorInfo(type=mesos_pb2.ExecutorInfo.CUSTOM,
                                  name="Command Executor (Task: t)")
    assert kind_of(info) is ExecutorKind.CUSTOM
