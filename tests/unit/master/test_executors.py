"""Which ExecutorInfos Mesos takes for the same executor (``validateCompatibleExecutorInfo``), and
which executors an agent reports are its own command executors."""

from __future__ import annotations

from agent_runtime.executor_kind import generated_for_command_task
from agent_runtime.master.executors import compatible_executors, executor_as_launched
from agent_runtime.proto import mesos_pb2
from agent_runtime.resources import parse


def _executor(command: str = "./run", resources: str = "cpus:0.1;mem:32") -> mesos_pb2.ExecutorInfo:
    info = mesos_pb2.ExecutorInfo(type=mesos_pb2.ExecutorInfo.CUSTOM, name="e")
    info.executor_id.value = "e1"
    info.command.value = command
    info.resources.extend(parse(resources).to_proto())
    return info


def test_the_same_executor_info_in_another_order_is_compatible() -> None:
    first = executor_as_launched(_executor(), "F1", "web")
    second = _executor()
    reordered = list(second.resources)[::-1]
    second.ClearField("resources")
    second.resources.extend(reordered)
    assert compatible_executors(executor_as_launched(second, "F1", "web"), first)
    assert first.framework_id.value == "F1"
    assert {r.allocation_info.role for r in first.resources} == {"web"}


def test_any_other_difference_is_not() -> None:
    first = executor_as_launched(_executor(), "F1", "*")
    for other in (_executor(command="./other"), _executor(resources="cpus:0.2;mem:32")):
        assert not compatible_executors(executor_as_launched(other, "F1", "*"), first)
    labelled = _executor()
    labelled.labels.labels.add(key="k", value="v")
    assert not compatible_executors(executor_as_launched(labelled, "F1", "*"), first)
    # Another role's allocation is another executor, as in Mesos (allocation_info compared).
    assert not compatible_executors(executor_as_launched(_executor(), "F1", "web"), first)


def test_command_executors_are_told_apart_from_custom_ones() -> None:
    generated = mesos_pb2.ExecutorInfo(type=mesos_pb2.ExecutorInfo.DEFAULT,
                                       name="Command Executor (Task: t) (Command: sh -c 'x')")
    assert generated_for_command_task(generated)
    assert not generated_for_command_task(_executor())
