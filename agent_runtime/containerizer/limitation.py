"""What a container broke: told by an isolator, acted on by the containerizer, reported by the
agent. Its own module so that the containerizer's and the isolators' interfaces can both name it
without importing each other."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limitation:
    """A limit the container broke: the containerizer destroys it, the agent reports this."""

    reason: int  # a mesos_pb2.TaskStatus.Reason
    message: str
