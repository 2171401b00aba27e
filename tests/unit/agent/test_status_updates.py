"""The status update manager forwards an update only once its stream's checkpoint is done."""

from __future__ import annotations

import asyncio
import uuid

from agent_runtime.agent.status_updates import StatusUpdateManager
from agent_runtime.proto import internal_pb2, mesos_pb2
from agent_runtime.task_states import TaskState


def _status(task_id: str, state: TaskState) -> mesos_pb2.TaskStatus:
    status = mesos_pb2.TaskStatus(state=state, uuid=uuid.uuid4().bytes)
    status.task_id.value = task_id
    return status


class Disk:
    """Stands in for the checkpoint writer: each change gets a future the test completes."""

    def __init__(self) -> None:
        self.writes: list[asyncio.Future[None]] = []

    def changed(self, framework_id: str, task_id: str) -> asyncio.Future[None]:
        self.writes.append(asyncio.get_running_loop().create_future())
        return self.writes[-1]


async def test_an_update_is_forwarded_once_checkpointed() -> None:
    sent: list[internal_pb2.StatusUpdate] = []
    disk = Disk()
    manager = StatusUpdateManager(sent.append, changed=disk.changed)
    running = _status("t1", mesos_pb2.TASK_RUNNING)
    assert manager.update("F", running)
    manager.resend_all()  # a registration meanwhile does not jump the checkpoint
    await asyncio.sleep(0)
    assert sent == []
    disk.writes[-1].set_result(None)
    await asyncio.sleep(0)
    assert [u.status.uuid for u in sent] == [running.uuid]


async def test_the_next_update_after_an_ack_waits_for_the_acks_checkpoint() -> None:
    sent: list[internal_pb2.StatusUpdate] = []
    disk = Disk()
    manager = StatusUpdateManager(sent.append, changed=disk.changed)
    running, finished = (_status("t1", s) for s in (mesos_pb2.TASK_RUNNING,
                                                     mesos_pb2.TASK_FINISHED))
    manager.update("F", running)
    manager.update("F", finished)
    for write in disk.writes:
        write.set_result(None)
    await asyncio.sleep(0)
    assert [u.status.uuid for u in sent] == [running.uuid]
    assert manager.acknowledge("F", "t1", running.uuid) is not None
    await asyncio.sleep(0)
    assert len(sent) == 1
    disk.writes[-1].set_result(None)
    await asyncio.sleep(0)
    assert [u.status.uuid for u in sent] == [running.uuid, finished.uuid]
    manager.forget_framework("F")


async def test_an_update_whose_checkpoint_failed_is_not_forwarded() -> None:
    sent: list[internal_pb2.StatusUpdate] = []
    disk = Disk()
    manager = StatusUpdateManager(sent.append, changed=disk.changed)
    manager.update("F", _status("t1", mesos_pb2.TASK_RUNNING))
    disk.writes[-1].set_exception(OSError("disk full"))
    await asyncio.sleep(0)
    assert sent == []
    manager.resend_all()  # the next registration sends it, as after a restart
    assert len(sent) == 1
    manager.forget_framework("F")


async def test_without_checkpoints_an_update_is_forwarded_at_once() -> None:
    sent: list[internal_pb2.StatusUpdate] = []
    manager = StatusUpdateManager(sent.append)
    manager.update("F", _status("t1", mesos_pb2.TASK_RUNNING))
    assert len(sent) == 1
    manager.forget_framework("F")
