"""Frameworks in the master: SUBSCRIBE, failover, disconnection and TEARDOWN.

:class:`FrameworkLifecycle` moves frameworks through the table in
:mod:`agent_runtime.master.lifecycle` (RECOVERED, ACTIVE, DISCONNECTED, COMPLETED) and tells the
allocator, the framework and its agents what each move means.
"""

from __future__ import annotations

import asyncio
import logging

from agent_runtime.errors import BadRequest, Forbidden
from agent_runtime.ids import check_id
from agent_runtime.master.allocator import Allocator
from agent_runtime.master.book import MasterBook
from agent_runtime.master.effects import MasterEffects
from agent_runtime.master.executors import CustomExecutors
from agent_runtime.master.lifecycle import FrameworkState
from agent_runtime.master.model import Framework
from agent_runtime.master.offer_filters import offer_minimums
from agent_runtime.master.offers import Offers
from agent_runtime.master.task_ends import TaskEnds
from agent_runtime.proto import internal_pb2, mesos_pb2, scheduler_pb2
from agent_runtime.resources import validate_role
from agent_runtime.streams import EventStream

log = logging.getLogger(__name__)
Capability = mesos_pb2.FrameworkInfo.Capability


class FrameworkLifecycle:
    def __init__(self, book: MasterBook, effects: MasterEffects, allocator: Allocator, *,
                 offers: Offers, executors: CustomExecutors, ends: TaskEnds,
                 master_info: mesos_pb2.MasterInfo, heartbeat_interval: float) -> None:
        self.book = book
        self.effects = effects
        self.allocator = allocator
        self.offers = offers
        self.executors = executors
        self.ends = ends
        self.master_info = master_info  # the master's own, its port filled in once it listens
        self.heartbeat_interval = heartbeat_interval
        self._next_framework = 0

    def validate(self, info: mesos_pb2.FrameworkInfo) -> None:
        if not info.user:
            raise BadRequest("FrameworkInfo.user must be set")
        if not info.name:
            raise BadRequest("FrameworkInfo.name must be set")
        if info.failover_timeout < 0:
            raise BadRequest("FrameworkInfo.failover_timeout must not be negative")
        if info.id.value:  # an empty one asks for a new ID, as with Mesos's driver
            # Agents name sandboxes and checkpoints after it: '../..' or '/etc' must not pass.
            check_id(info.id.value, "'FrameworkInfo.id'")
        multi_role = any(c.type == Capability.MULTI_ROLE for c in info.capabilities)
        if info.roles and not multi_role:
            raise BadRequest("'FrameworkInfo.roles' is set but MULTI_ROLE capability is not")
        if multi_role and info.HasField("role"):
            raise BadRequest("'FrameworkInfo.role' must not be set with MULTI_ROLE")
        roles = list(info.roles) if multi_role else [info.role or "*"]
        if len(set(roles)) != len(roles):
            raise BadRequest(f"'FrameworkInfo.roles' contains duplicate items: {roles}")
        for role in roles:
            validate_role(role)
            if role != "*":  # the default role is every framework's, whatever --roles says
                self.book.roles.check(role)

    def subscribe(self, call: scheduler_pb2.Call, stream: EventStream) -> Framework:
        info = mesos_pb2.FrameworkInfo()
        info.CopyFrom(call.subscribe.framework_info)
        self.validate(info)
        minimums = offer_minimums(info, list(info.roles) or [info.role or "*"])
        if (call.HasField("framework_id") and info.HasField("id")
                and call.framework_id.value != info.id.value):
            raise BadRequest("'framework_id' differs from 'subscribe.framework_info.id'")
        framework_id = info.id.value if info.HasField("id") else ""
        framework = self.book.frameworks.get(framework_id) if framework_id else None
        if framework is None:
            framework = self._add(call, info)
        else:
            self._failover(framework, info)
        framework_id = framework.id
        framework.suppressed_roles = set(call.subscribe.suppressed_roles)
        framework.stream = stream
        framework.transition(FrameworkState.ACTIVE)
        self.allocator.activate_framework(framework_id)
        self.allocator.set_offer_filters(framework_id, minimums)
        self.allocator.revive(framework_id)
        if framework.suppressed_roles:
            self.allocator.suppress(framework_id, list(framework.suppressed_roles))

        subscribed = scheduler_pb2.Event(type=scheduler_pb2.Event.SUBSCRIBED)
        subscribed.subscribed.framework_id.value = framework_id
        subscribed.subscribed.heartbeat_interval_seconds = self.heartbeat_interval
        subscribed.subscribed.master_info.CopyFrom(self.master_info)
        stream.send(subscribed)
        stream.send(scheduler_pb2.Event(type=scheduler_pb2.Event.HEARTBEAT))
        framework.heartbeat = asyncio.get_running_loop().create_task(self._heartbeats(framework))
        self.effects.allocate_soon()
        return framework

    def _add(self, call: scheduler_pb2.Call, info: mesos_pb2.FrameworkInfo) -> Framework:
        framework_id = info.id.value if info.HasField("id") else ""
        if not framework_id:
            framework_id = f"{self.master_info.id}-{self._next_framework:04d}"
            self._next_framework += 1
            info.id.value = framework_id
        elif self.book.completed_framework(framework_id) is not None:
            raise Forbidden(f"Framework {framework_id} has been removed")
        framework = Framework(framework_id, info, registered_time=self.effects.now(),
                              state=FrameworkState.ACTIVE)
        self.book.frameworks[framework_id] = framework
        self.allocator.add_framework(
            framework_id, framework.roles,
            suppressed=list(call.subscribe.suppressed_roles),
            gpu_aware=framework.has_capability(Capability.GPU_RESOURCES),
        )
        log.info("framework %s (%s) subscribed", framework_id, info.name)
        return framework

    def _failover(self, framework: Framework, info: mesos_pb2.FrameworkInfo) -> None:
        """The new connection replaces the old one, keeping user and checkpoint."""
        info.user = framework.info.user
        info.checkpoint = framework.info.checkpoint
        if framework.stream is not None:
            error = scheduler_pb2.Event(type=scheduler_pb2.Event.ERROR)
            error.error.message = "Framework failed over"
            framework.stream.send(error)
            framework.stream.close()
        if framework.heartbeat is not None:
            framework.heartbeat.cancel()
        if framework.failover_timer is not None:
            framework.failover_timer.cancel()
            framework.failover_timer = None
        for offer_id in list(framework.offers):
            self.offers.rescind(offer_id)
        framework.info = info
        framework.reregistered_time = self.effects.now()
        self.allocator.update_framework(
            framework.id, framework.roles,
            gpu_aware=framework.has_capability(Capability.GPU_RESOURCES),
        )
        log.info("framework %s (%s) re-subscribed", framework.id, info.name)

    async def _heartbeats(self, framework: Framework) -> None:
        heartbeat = scheduler_pb2.Event(type=scheduler_pb2.Event.HEARTBEAT)
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            self.effects.to_framework(framework, heartbeat)

    def stream_closed(self, framework: Framework, stream: EventStream) -> None:
        """The scheduler's connection went away: disconnect, start the failover clock."""
        if framework.stream is not stream or self.book.frameworks.get(framework.id) is not \
                framework:
            return
        log.info("framework %s disconnected", framework.id)
        framework.stream = None
        framework.transition(FrameworkState.DISCONNECTED)
        framework.unregistered_time = self.effects.now()
        if framework.heartbeat is not None:
            framework.heartbeat.cancel()
        self.allocator.deactivate_framework(framework.id)
        for offer_id in list(framework.offers):
            self.offers.rescind(offer_id)
        framework.failover_timer = self.effects.call_later(
            framework.info.failover_timeout, lambda: self._failover_expired(framework.id))

    def _failover_expired(self, framework_id: str) -> None:
        framework = self.book.frameworks.get(framework_id)
        if framework is not None and framework.state is FrameworkState.DISCONNECTED:
            log.info("framework %s did not fail over in time; removing it", framework_id)
            self.remove(framework)

    def remove(self, framework: Framework) -> None:
        """TEARDOWN: kill every task of the framework everywhere and forget it."""
        if self.book.frameworks.get(framework.id) is not framework:
            return
        if framework.failover_timer is not None:
            framework.failover_timer.cancel()
        if framework.heartbeat is not None:
            framework.heartbeat.cancel()
        for offer_id in list(framework.offers):
            self.offers.give_back(offer_id)
        message = internal_pb2.MasterMessage()
        message.shutdown_framework.framework_id.value = framework.id
        with_executors = self.book.frameworks_with_executors_on
        for agent in self.book.agents.values():
            if framework.id in agent.tasks or framework.id in with_executors(agent.id):
                self.effects.to_agent(agent, message)
        # Completed first, so the tasks forgotten below land in its completed_tasks.
        self.book.complete_framework(framework)
        for task in list(framework.tasks.values()):
            if not task.terminal:
                self.ends.free(task)
                task.transition(mesos_pb2.TASK_KILLED)
            self.book.forget_task(task)
        self.executors.forget_framework(framework.id)
        self.allocator.remove_framework(framework.id)
        framework.transition(FrameworkState.COMPLETED)
        framework.unregistered_time = self.effects.now()
        if framework.stream is not None:
            framework.stream.close()
            framework.stream = None
        self.effects.allocate_soon()

    def framework_for(self, call: scheduler_pb2.Call, stream_id: str | None) -> Framework:
        """The subscribed framework a non-SUBSCRIBE call comes from, on its current stream."""
        framework = self.book.frameworks.get(call.framework_id.value)
        if framework is None:
            raise BadRequest("Framework cannot be found")
        if not framework.connected or framework.stream is None:
            raise Forbidden("Framework is not subscribed")
        if stream_id != framework.stream.stream_id:
            raise BadRequest(
                f"The stream ID '{stream_id}' included in this request didn't match "
                f"the stream ID currently associated with framework ID {framework.id}"
            )
        return framework


__all__ = ["FrameworkLifecycle"]
