"""The master's end of the internal agent link: one bidirectional gRPC stream per agent."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable

import grpc

from agent_runtime.errors import Forbidden, RuntimeErrorBase
from agent_runtime.master import agent_outbox
from agent_runtime.master.agents import AgentRemoved
from agent_runtime.master.master import Master
from agent_runtime.master.model import Agent
from agent_runtime.master.pinger import Pinger
from agent_runtime.proto import internal_pb2, internal_pb2_grpc

# An agent writes its RegisterAgent as soon as its stream opens. A stream that says nothing is
# not an agent: it is ended, or strangers could hold streams (and their memory) open for good.
REGISTER_WITHIN = 10.0

log = logging.getLogger(__name__)


Message = internal_pb2.AgentMessage


class AgentLinkService(internal_pb2_grpc.AgentLinkServicer):
    def __init__(self, master: Master) -> None:
        self.master = master
        launcher = master.launcher
        # What an agent says on its link, by the message's kind (RegisterAgent comes first,
        # once, and is handled by Connect).
        self._handlers: dict[str, Callable[[Agent, Message], None]] = {
            "status_update": lambda a, m: launcher.status_update(a, m.status_update),
            "executor_message": lambda a, m: launcher.executor_message(a, m.executor_message),
            "executor_exited": lambda a, m: launcher.executor_exited(a, m.executor_exited),
            "pong": _pong,
        }
        # The principal of each agent's link (--authenticate_agents; None: no credential),
        # set by mesos-master; an agent id stays with the principal that registered it.
        self.authenticate: Callable[[Iterable[tuple[str, str | bytes]]], str | None] = (
            lambda metadata: None)
        self.principals: dict[str, str | None] = {}
        # Every --agent_ping_timeout, --max_agent_ping_timeouts unanswered pings in a row make
        # an agent unreachable (a stopped or partitioned agent keeps its TCP link open).
        config = master.config
        self.pinger = Pinger(config.agent_ping_timeout, config.max_agent_ping_timeouts,
                             lambda agent, missed: master.agent_lifecycle.mark_unreachable(
                                 agent.id, f"no pong for {missed} pings of "
                                           f"{config.agent_ping_timeout:g}s"))

    def _bind(self, agent_id: str, presented: str | None) -> None:
        if not agent_id:
            return
        # Seen by this master, or bound in the registry by an earlier one (a failover must not
        # open a window in which another principal's link takes the id).
        bound = self.principals[agent_id] if agent_id in self.principals \
            else self.master.book.registry.principals.get(agent_id)
        if (agent_id in self.principals or bound is not None) and bound != presented:
            raise Forbidden(f"agent {agent_id} is registered by another principal")

    async def Connect(
        self,
        request_iterator: AsyncIterator[internal_pb2.AgentMessage],
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
    ) -> AsyncIterator[internal_pb2.MasterMessage]:
        outbox: asyncio.Queue[internal_pb2.MasterMessage | None] = asyncio.Queue()
        try:
            first = await asyncio.wait_for(anext(aiter(request_iterator), None), REGISTER_WITHIN)
        except TimeoutError:
            # A status, not an `error` message: an agent takes those as a refusal for good and
            # exits, where a real one this slow (a starved host) should just try again.
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                                f"no RegisterAgent message within {REGISTER_WITHIN:g}s")
        if first is None or first.WhichOneof("kind") != "register":
            yield internal_pb2.MasterMessage(error="expected a RegisterAgent message first")
            return
        try:
            presented = self.authenticate(context.invocation_metadata() or ())
            self._bind(first.register.agent_info.id.value, presented)
            with self.master.effects.registrar.deferred() as admitted:
                agent = self.master.agent_lifecycle.register(first.register, outbox)
                bindings = self.master.book.registry.principals
                if presented is not None and bindings.get(agent.id) != presented:
                    bindings[agent.id] = presented  # durable with the admission, or alone
                    self.master.effects.save_registry()
            self.principals[agent.id] = agent.principal = presented
        except AgentRemoved as exc:
            shutdown = internal_pb2.MasterMessage()
            shutdown.shutdown.message = str(exc)
            yield shutdown
            return
        except RuntimeErrorBase as exc:
            yield internal_pb2.MasterMessage(error=f"registration refused: {exc}")
            return
        if admitted.requested and not await self._committed(agent, outbox):
            return
        registered = internal_pb2.MasterMessage()
        registered.registered.agent_id.value = agent.id
        registered.registered.master_info.CopyFrom(self.master.info)
        config = self.master.config
        registered.registered.ping_timeout_seconds = (
            float(config.agent_ping_timeout) * config.max_agent_ping_timeouts)
        agent_outbox.release(self.master.book, agent)  # read after `registered` goes
        yield registered
        loop = asyncio.get_running_loop()
        reader = loop.create_task(self._read(agent, request_iterator, outbox))
        self.pinger.add(agent, outbox)
        in_flight = agent_outbox.InFlight()
        try:
            while True:
                message = await outbox.get()
                if message is None:
                    break
                in_flight.sent(message, agent.pong_seq)
                yield message
        finally:
            reader.cancel()
            self.pinger.remove(outbox)
            self.master.agent_lifecycle.disconnected(agent, outbox)
            # Kills the agent may never have got first (they went first), then what was queued.
            agent_outbox.reroute(self.master.book, agent, in_flight.unconfirmed(agent.pong_seq)
                                 + agent_outbox.leftovers(outbox))

    async def _committed(self, agent: Agent,
                         outbox: asyncio.Queue[internal_pb2.MasterMessage | None]) -> bool:
        """Wait for the registry write that admits the agent (one write for all agents that
        register meanwhile); the agent hears it is registered only once that is durable. When
        the write fails, the link ends as if it broke: the agent registers again later."""
        try:
            await self.master.effects.registrar.commit()
        except asyncio.CancelledError:  # the agent went away meanwhile
            self.master.agent_lifecycle.disconnected(agent, outbox)
            raise
        except Exception as exc:  # any failure: not admitted, not told so
            log.error("cannot admit agent %s in the registry: %s", agent.id, exc)
            self.master.agent_lifecycle.disconnected(agent, outbox)
            return False
        return True

    async def _read(
        self,
        agent: Agent,
        request_iterator: AsyncIterator[internal_pb2.AgentMessage],
        outbox: asyncio.Queue[internal_pb2.MasterMessage | None],
    ) -> None:
        try:
            async for message in request_iterator:
                handler = self._handlers.get(message.WhichOneof("kind") or "")
                if handler is not None:
                    handler(agent, message)
        except (grpc.aio.AioRpcError, asyncio.CancelledError):
            pass
        except Exception:
            log.exception("agent link of %s failed", agent.id)
        finally:
            outbox.put_nowait(None)


def _pong(agent: Agent, message: Message) -> None:
    agent.pong_seq = message.pong
