"""A task's /master/state JSON is kept on the task and rendered again when the task changes:
a new status, a new state, going unreachable; the unreachable rendering never leaks into the
shared one."""

from __future__ import annotations

from agent_runtime.master import state_json
from agent_runtime.master.model import Task
from agent_runtime.proto import mesos_pb2
from agent_runtime.resources import parse


def _status(state: mesos_pb2.TaskState.ValueType, when: float) -> mesos_pb2.TaskStatus:
    return mesos_pb2.TaskStatus(state=state, timestamp=when, uuid=b"u" * 16)


def test_a_task_is_rendered_again_only_when_it_changes() -> None:
    info = mesos_pb2.TaskInfo(name="web")
    info.task_id.value = "t1"
    task = Task(info, "F", "S", "*", parse("cpus:1"))
    first = state_json.task_json(task)
    assert state_json.task_json(task) is first  # unchanged: the same rendering
    task.transition(mesos_pb2.TASK_RUNNING)
    task.statuses.append(_status(mesos_pb2.TASK_RUNNING, 1.0))
    running = state_json.task_json(task)
    assert running["state"] == "TASK_RUNNING"
    assert running["statuses"] == [{"state": "TASK_RUNNING", "timestamp": 1.0}]
    task.unreachable_time = 5.0
    assert state_json._unreachable_json(task)["state"] == "TASK_UNREACHABLE"
    assert state_json.task_json(task)["state"] == "TASK_RUNNING"
    task.transition(mesos_pb2.TASK_FINISHED)
    assert state_json.task_json(task)["state"] == "TASK_FINISHED"
