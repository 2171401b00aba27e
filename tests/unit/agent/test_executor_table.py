"""The executor table: frameworks live while they have executors, then move to the completed
ones (50 kept); lookups by framework, executor and launched task."""

from __future__ import annotations

from agent_runtime.agent.executor_table import MAX_COMPLETED_FRAMEWORKS, ExecutorTable
from agent_runtime.agent.model import Executor
from agent_runtime.executor_kind import ExecutorKind
from agent_runtime.proto import internal_pb2, mesos_pb2
from tests.unit.agent.fakes import framework_info


def _executor(framework_id: str, executor_id: str) -> Executor:
    info = mesos_pb2.ExecutorInfo()
    info.executor_id.value = executor_id
    return Executor(framework_id, info, f"c-{executor_id}", "/sandbox", ExecutorKind.CUSTOM)


def test_lookups_and_the_last_executor_ending_its_framework() -> None:
    table = ExecutorTable()
    framework = table.framework_for(framework_info("F1", checkpoint=True))
    assert table.framework_for(framework_info("F1")) is framework  # kept, not replaced
    first, second = _executor("F1", "e1"), _executor("F1", "e2")
    table.add(first)
    table.add(second)
    task = mesos_pb2.Task(name="t", state=mesos_pb2.TASK_RUNNING)
    task.task_id.value = "t1"
    second.launched["t1"] = task
    second.queued["t2"] = mesos_pb2.TaskInfo(name="t2")

    assert table.executor("F1", "e2") is second and table.executor("F2", "e2") is None
    assert list(table.executors()) == [first, second]
    assert table.holding("F1", "t1") is second
    assert table.holding("F1", "t2") is None  # only queued: not launched yet
    assert table.checkpointing("F1") and not table.checkpointing("F2")

    assert table.remove(first) is None
    assert framework.completed_executors[-1] is first
    assert table.remove(second) is framework
    assert table.frameworks() == [] and table.completed_frameworks() == [framework]
    assert table.remove(second) is None  # an exit told twice changes nothing


def test_only_the_latest_completed_frameworks_are_kept() -> None:
    table = ExecutorTable()
    for n in range(MAX_COMPLETED_FRAMEWORKS + 5):
        table.framework_for(framework_info(f"F{n}"))
        executor = _executor(f"F{n}", "e")
        table.add(executor)
        table.remove(executor)
    kept = [f.id for f in table.completed_frameworks()]
    assert kept == [f"F{n}" for n in range(5, MAX_COMPLETED_FRAMEWORKS + 5)]


def test_a_registration_reports_launched_and_queued_tasks() -> None:
    table = ExecutorTable()
    table.framework_for(framework_info("F1"))
    executor = _executor("F1", "e1")
    table.add(executor)
    queued = mesos_pb2.TaskInfo(name="q")
    queued.task_id.value = "q1"
    executor.queued["q1"] = queued
    register = internal_pb2.RegisterAgent()
    table.report(register, "A-S0")
    (state,) = register.executors
    (task,) = state.tasks
    assert (task.task_id.value, task.state, task.agent_id.value) == (
        "q1", mesos_pb2.TASK_STAGING, "A-S0")
