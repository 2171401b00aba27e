"""LAUNCH_GROUP in the master, with the book and fake effects: a valid group goes to its agent
in one RunTaskGroup and is charged once with its executor; an invalid one is refused whole,
every task told why, nothing taken from the offer."""

from __future__ import annotations

import pytest

from agent_runtime.master.check_validation import checks_error
from agent_runtime.proto import mesos_pb2, scheduler_pb2
from agent_runtime.resources import parse
from tests.unit.master.fakes import Parts, add_agent, add_framework, offer_all, parts

Status = mesos_pb2.TaskStatus
Operation = mesos_pb2.Offer.Operation


def _accept(p: Parts, offer_ids: list[str], tasks: dict[str, str], *,
            executor: str = "cpus:0.1;mem:32",
            edit: object = None) -> scheduler_pb2.Call.Accept:
    accept = scheduler_pb2.Call.Accept()
    for offer_id in offer_ids:
        accept.offer_ids.add(value=offer_id)
    group = accept.operations.add(type=Operation.LAUNCH_GROUP).launch_group
    group.executor.type = mesos_pb2.ExecutorInfo.DEFAULT
    group.executor.executor_id.value = "E"
    group.executor.resources.extend(parse(executor).to_proto())
    for task_id, resources in tasks.items():
        task = group.task_group.tasks.add(name=task_id)
        task.task_id.value = task_id
        task.agent_id.value = "S1"
        task.command.value = "sleep 1"
        task.resources.extend(parse(resources).to_proto())
    if callable(edit):
        edit(group)
    return accept


def test_a_group_goes_to_its_agent_whole_and_its_executor_is_charged_once() -> None:
    p = parts()
    framework = add_framework(p)
    add_agent(p, resources="cpus:4;mem:1024")
    p.launcher.accept(framework, _accept(p, offer_all(p), {"a": "cpus:1;mem:128",
                                                          "b": "cpus:1;mem:128"}))
    ((agent_id, message),) = p.effects.to_agents
    run = message.run_task_group
    assert agent_id == "S1" and [t.task_id.value for t in run.task_group.tasks] == ["a", "b"]
    assert run.executor_info.framework_id.value == "F1"
    assert framework.tasks["a"].executor_id == "E" and framework.tasks["b"].state == \
        mesos_pb2.TASK_STAGING
    assert p.executors.knows(("S1", "F1", "E"))
    assert p.effects.metrics["master/tasks_launched"] == 2
    # What is left goes back: 4 - 2 - 0.1 cpus.
    (again,) = p.allocator.allocate(p.effects.now() + 6)
    assert again.resources == parse("cpus:1.9;mem:736")


def _edits() -> list[tuple[object, str]]:
    def custom(group: Operation.LaunchGroup) -> None:
        group.executor.type = mesos_pb2.ExecutorInfo.CUSTOM

    def command(group: Operation.LaunchGroup) -> None:
        group.executor.command.value = "my-executor"

    def own_executor(group: Operation.LaunchGroup) -> None:
        group.task_group.tasks[1].executor.executor_id.value = "X"

    def duplicate(group: Operation.LaunchGroup) -> None:
        group.task_group.tasks[1].task_id.value = "a"

    def hostile_id(group: Operation.LaunchGroup) -> None:
        group.task_group.tasks[0].task_id.value = "../../etc"

    def docker_task(group: Operation.LaunchGroup) -> None:
        container = group.task_group.tasks[0].container
        container.type = mesos_pb2.ContainerInfo.DOCKER  # a group task runs in the executor's

    def bad_check(group: Operation.LaunchGroup) -> None:
        group.task_group.tasks[0].health_check.type = mesos_pb2.HealthCheck.TCP

    return [(custom, "must be of type DEFAULT"), (command, "'ExecutorInfo.command' must not"),
            (own_executor, "'TaskInfo.executor' must not be set"),
            (duplicate, "duplicate ID in its group"), (hostile_id, "Task ID is invalid"),
            (docker_task, "a MESOS container only"), (bad_check, "a TCP health check needs 'tcp'")]


@pytest.mark.parametrize(("edit", "message"), _edits())
def test_an_invalid_group_fails_every_task_and_takes_nothing(edit: object, message: str) -> None:
    p = parts()
    framework = add_framework(p)
    add_agent(p, resources="cpus:4;mem:1024")
    p.launcher.accept(framework, _accept(p, offer_all(p), {"a": "cpus:1", "b": "cpus:1"},
                                         edit=edit))
    assert p.effects.to_agents == [] and framework.tasks == {}
    statuses = p.effects.updates("F1")
    assert statuses and all(s.state == mesos_pb2.TASK_ERROR for s in statuses)
    assert all(s.reason == Status.REASON_TASK_GROUP_INVALID for s in statuses)
    assert message in statuses[0].message, statuses[0].message
    assert not p.executors.knows(("S1", "F1", "E"))


def test_an_empty_group_launches_nothing() -> None:
    p = parts()
    framework = add_framework(p)
    add_agent(p)
    p.launcher.accept(framework, _accept(p, offer_all(p), {}))
    assert p.effects.to_agents == [] and not p.executors.knows(("S1", "F1", "E"))


def test_a_group_that_does_not_fit_the_offer_is_refused() -> None:
    p = parts()
    framework = add_framework(p)
    add_agent(p, resources="cpus:2;mem:1024")
    p.launcher.accept(framework, _accept(p, offer_all(p), {"a": "cpus:1", "b": "cpus:1"}))
    (first, second) = p.effects.updates("F1")
    assert "more resources" in first.message and second.state == mesos_pb2.TASK_ERROR


@pytest.mark.parametrize(("field", "value", "message"), [
    ("delay_seconds", -1.0, "'delay_seconds' to be a non-negative"),
    ("interval_seconds", float("nan"), "'interval_seconds'"),
    ("timeout_seconds", float("inf"), "'timeout_seconds'"),
])
def test_health_check_durations_must_be_sane(field: str, value: float, message: str) -> None:
    task = mesos_pb2.TaskInfo()
    task.health_check.type = mesos_pb2.HealthCheck.TCP
    task.health_check.tcp.port = 80
    setattr(task.health_check, field, value)
    error = checks_error(task)
    assert error is not None and message in error


def test_checks_need_what_they_probe() -> None:
    task = mesos_pb2.TaskInfo()
    task.check.type = mesos_pb2.CheckInfo.HTTP
    task.check.http.port = 70000
    assert "port between 1 and 65535" in (checks_error(task) or "")
    task.check.http.port = 8080
    task.check.http.path = "no-slash"
    assert "must start with '/'" in (checks_error(task) or "")
    task.check.http.path = "/ok"
    assert checks_error(task) is None
    task.check.type = mesos_pb2.CheckInfo.COMMAND
    assert "needs 'command.command'" in (checks_error(task) or "")
    task.ClearField("check")
    task.health_check.type = mesos_pb2.HealthCheck.UNKNOWN
    assert "'type' must be" in (checks_error(task) or "")
