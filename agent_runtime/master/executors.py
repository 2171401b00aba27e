"""Custom executors in the master: which ones run where, and what they hold.

Decides about the custom executors kept in the book (``MasterBook.executors``, by agent id,
framework id and executor id): the ExecutorInfo a task launched one with
(``executor_as_launched``), Mesos's compatibility check for later tasks naming the same executor
(``compatible_executors``), the resources an executor holds besides its tasks (counted in an
agent's used resources), executors adopted from re-registering agents, and those removed when an
agent re-registers without them. Command executors are the agent's own business and are not
kept (the shared rule in :mod:`agent_runtime.executor_kind`), as in Mesos.
"""

from __future__ import annotations

from collections.abc import Iterable

from agent_runtime.errors import BadRequest
from agent_runtime.executor_kind import generated_for_command_task
from agent_runtime.master.allocator import Allocator
from agent_runtime.master.book import MasterBook
from agent_runtime.master.effects import MasterEffects
from agent_runtime.master.model import Agent, Executor, ExecutorKey
from agent_runtime.proto import internal_pb2, mesos_pb2
from agent_runtime.resources import Resources


def executor_as_launched(executor: mesos_pb2.ExecutorInfo, framework_id: str,
                         role: str) -> mesos_pb2.ExecutorInfo:
    """The ExecutorInfo as the master passes it on: framework id and allocation role set."""
    info = mesos_pb2.ExecutorInfo()
    info.CopyFrom(executor)
    info.framework_id.value = framework_id
    for resource in info.resources:
        resource.allocation_info.role = role
    return info


def compatible_executors(a: mesos_pb2.ExecutorInfo, b: mesos_pb2.ExecutorInfo) -> bool:
    """Mesos's ``ExecutorInfo`` equality (``validateCompatibleExecutorInfo``): every field the
    same, resources compared as a whole rather than in order."""
    plain_a, plain_b = mesos_pb2.ExecutorInfo(), mesos_pb2.ExecutorInfo()
    plain_a.CopyFrom(a)
    plain_b.CopyFrom(b)
    plain_a.ClearField("resources")
    plain_b.ClearField("resources")
    if plain_a != plain_b:
        return False
    # Resources compare without their allocation role; Mesos's Resource equality has it.
    if (sorted(r.allocation_info.role for r in a.resources)
            != sorted(r.allocation_info.role for r in b.resources)):
        return False
    try:
        return Resources.from_proto(a.resources) == Resources.from_proto(b.resources)
    except BadRequest:
        return False


class CustomExecutors:
    """The custom executors the master knows (kept in ``book.executors``); what they hold goes
    back to the allocator when they are removed."""

    def __init__(self, book: MasterBook, effects: MasterEffects, allocator: Allocator) -> None:
        self.book = book
        self.effects = effects
        self.allocator = allocator

    def knows(self, key: ExecutorKey) -> bool:
        return key in self.book.executors

    def launch_error(self, key: ExecutorKey, info: mesos_pb2.ExecutorInfo) -> str | None:
        """Why a task may not launch with ``info`` (as launched) for the executor ``key``."""
        # As Mesos: later tasks for an executor the agent already has must carry the same
        # ExecutorInfo; the first one's is what the executor was started with.
        executor = self.book.executors.get(key)
        if executor is not None and not compatible_executors(info, executor.info):
            return ("ExecutorInfo is not compatible with existing ExecutorInfo with same "
                    f"ExecutorID '{key[2]}'")
        return None

    def add(self, executor: Executor) -> None:
        """Track an executor this master launched (the allocator already counts its resources)."""
        key = (executor.agent_id, executor.framework_id, executor.executor_id)
        self.book.add_executor(key, executor)

    def forget_framework(self, framework_id: str) -> None:
        for key in [k for k in self.book.executors if k[1] == framework_id]:
            self.remove(key)

    def forget_agent(self, agent_id: str) -> None:
        """Drop an agent's executors without giving anything back: the allocator drops the
        whole agent, and its allocations with it."""
        for key in list(self.book.executors_on(agent_id)):
            self.book.pop_executor(key)

    def remove(self, key: ExecutorKey) -> None:
        """Forget a custom executor and give back what it held (its tasks are not touched)."""
        executor = self.book.pop_executor(key)
        if executor is not None:
            # Offered again at the next batched allocation, as a task's freed resources are.
            self.allocator.recover(key[1], executor.role, key[0], executor.resources,
                                   now=self.effects.now())

    def adopt(self, agent: Agent, info: mesos_pb2.ExecutorInfo) -> None:
        """A custom executor an agent reports that this master did not launch (it failed over,
        or the agent was away): account for it as if launched here."""
        key = (agent.id, info.framework_id.value, info.executor_id.value)
        if generated_for_command_task(info) or key in self.book.executors:
            return
        record = mesos_pb2.ExecutorInfo()
        record.CopyFrom(info)
        resources = Resources.from_proto(record.resources)
        role = next((r.allocation_info.role for r in record.resources
                     if r.allocation_info.role), "*")
        self.book.add_executor(key, Executor(record, agent.id, role, resources))
        if resources:
            self.allocator.allocate_resources(key[1], role, agent.id, resources)

    def sync(self, agent: Agent, executors: Iterable[internal_pb2.ExecutorState]) -> None:
        """As Mesos on re-registration: executors the master has but the agent does not report
        are removed (their resources go back); those it reports are adopted."""
        reported = [state.executor_info for state in executors]
        keys = {(agent.id, i.framework_id.value, i.executor_id.value) for i in reported}
        for key in [k for k in self.book.executors_on(agent.id) if k not in keys]:
            self.remove(key)
        for info in reported:
            if info.framework_id.value in self.book.frameworks:
                self.adopt(agent, info)


__all__ = ["CustomExecutors", "compatible_executors", "executor_as_launched"]
