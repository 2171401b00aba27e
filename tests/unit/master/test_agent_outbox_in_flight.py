"""``agent_outbox.InFlight``: kills and executor shutdowns a link sent count as delivered only
once the agent answers a ping sent after them; the rest are held again when the link breaks."""

from __future__ import annotations

from agent_runtime.master.agent_outbox import InFlight
from agent_runtime.proto import internal_pb2

Message = internal_pb2.MasterMessage


def _kill(task_id: str) -> Message:
    message = Message()
    message.kill_task.framework_id.value = "F"
    message.kill_task.task_id.value = task_id
    return message


def _ping(seq: int) -> Message:
    return Message(ping=seq)


def _ids(messages: list[Message]) -> list[str]:
    return [m.kill_task.task_id.value for m in messages]


def test_a_kill_is_confirmed_by_the_pong_of_a_later_ping() -> None:
    flight = InFlight()
    flight.sent(_ping(1), pong_seq=0)
    flight.sent(_kill("a"), pong_seq=0)
    assert _ids(flight.unconfirmed(pong_seq=1)) == ["a"]  # the pong of ping 1 came before it
    flight.sent(_ping(2), pong_seq=1)
    flight.sent(_kill("b"), pong_seq=1)
    assert _ids(flight.unconfirmed(pong_seq=1)) == ["a", "b"]
    assert _ids(flight.unconfirmed(pong_seq=2)) == ["b"]
    flight.sent(_ping(3), pong_seq=3)  # pongs seen while sending drop what they confirm
    assert _ids(flight.unconfirmed(pong_seq=3)) == []


def test_only_kills_and_shutdowns_are_kept() -> None:
    flight = InFlight()
    run = Message()
    run.run_task.task.task_id.value = "launched-once"  # sent twice, it would launch twice
    shutdown = Message()
    shutdown.shutdown_executor.executor_id.value = "e"
    for message in (run, shutdown, _kill("k"), Message(ping=1)):
        flight.sent(message, pong_seq=0)
    kinds = [m.WhichOneof("kind") for m in flight.unconfirmed(pong_seq=0)]
    assert kinds == ["shutdown_executor", "kill_task"]
