"""The agent's end of the internal link: register, re-register after any break, relay messages.

The master is given as ``host:port`` of its HTTP server; the agent asks it where the gRPC link
listens (``/master/agent_link``), then keeps one bidirectional stream open. Any break (master
restart, network) ends in a re-registration with the same agent id after a randomised backoff
(``--registration_backoff_factor``, doubling up to a minute, as Mesos).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

import aiohttp
import grpc

from agent_runtime.agent.agent import Agent
from agent_runtime.detector import MasterDetector
from agent_runtime.proto import internal_pb2, internal_pb2_grpc
from agent_runtime.tls import PLAIN, TlsConfig

log = logging.getLogger(__name__)
MAX_BACKOFF = 60.0


class MasterLink:
    def __init__(self, agent: Agent, master: str, backoff_factor: float,
                 tls: TlsConfig = PLAIN) -> None:
        self.agent = agent
        self.tls = tls  # the master's HTTP API and the link both speak TLS when it is on
        # `host:port`, or `zk://.../path`: asked again on every (re)connection.
        self.detector = MasterDetector(master)
        self.backoff_factor = backoff_factor
        self.registered = asyncio.Event()
        self._outbox: asyncio.Queue[internal_pb2.AgentMessage] | None = None
        self._task: asyncio.Task[None] | None = None
        self.refused: str | None = None
        # Told when the master refuses this agent for good: (shutdown, why). shutdown: it
        # removed the agent (marked gone); else it refused the registration (credentials).
        self.on_refused: Callable[[bool, str], None] = lambda shutdown, why: None
        self._found = False  # whether the last session found the master's link
        # Sent with every link: the agent's --credential (see agent/security.py).
        self.metadata: tuple[tuple[str, str], ...] = ()
        agent.send_to_master = self.send

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await asyncio.to_thread(self.detector.close)

    def send(self, message: internal_pb2.AgentMessage) -> None:
        if self._outbox is not None:
            self._outbox.put_nowait(message)

    async def _link_address(self) -> str:
        master = await self.detector.leader()
        host = master.rpartition(":")[0] or master
        async with aiohttp.ClientSession() as session, session.get(
            self.tls.url(master) + "/master/agent_link", timeout=aiohttp.ClientTimeout(total=5),
            ssl=self.tls.client_context() or True,
        ) as response:
            response.raise_for_status()
            data = await response.json()
        return f"{host}:{data['port']}"

    async def _run(self) -> None:
        attempt = 0
        while True:
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.info("master link: %s", exc)
            if self.refused is not None:
                return
            if self.registered.is_set() or not self._found:
                # A session that registered ends only by breaking; the backoff starts over (as
                # Mesos's does on each new master), so later failovers are not slowed by earlier.
                # No master found (down, restarting) is no registration refused: looked for
                # again at the first backoff, so that the master that comes up is tried within
                # the factor, not after the 8 or 16 s the failed lookups would have grown to.
                attempt = 0
            self.registered.clear()
            self._outbox = None
            delay = random.uniform(0, min(self.backoff_factor * 2 ** attempt, MAX_BACKOFF))
            attempt += 1
            await asyncio.sleep(max(delay, 0.05))

    async def _session(self) -> None:
        self._found = False
        address = await self._link_address()
        self._found = True
        channel = (grpc.aio.secure_channel(address, self.tls.grpc_channel_credentials())
                   if self.tls.enabled else grpc.aio.insecure_channel(address))
        async with channel:
            stub = internal_pb2_grpc.AgentLinkStub(channel)
            call = stub.Connect(metadata=self.metadata)
            await call.write(internal_pb2.AgentMessage(register=self.agent.registration()))
            first = await call.read()
            if isinstance(first, internal_pb2.MasterMessage) and first.HasField("shutdown"):
                self._shut_down(first.shutdown.message)
            if not isinstance(first, internal_pb2.MasterMessage) or (
                first.WhichOneof("kind") != "registered"
            ):
                error = first.error if isinstance(first, internal_pb2.MasterMessage) else ""
                if error:
                    self.refused = error
                    log.error("master refused registration: %s", error)
                    self.on_refused(False, error)
                raise ConnectionError(f"registration failed {error}")
            outbox: asyncio.Queue[internal_pb2.AgentMessage] = asyncio.Queue()
            self._outbox = outbox
            self.agent.registered(first.registered.agent_id.value, first.registered.master_info)
            self.registered.set()
            log.info("registered with master %s as agent %s", first.registered.master_info.id,
                     self.agent.id)
            writer = asyncio.get_running_loop().create_task(self._write(call, outbox))
            # Pings come every --agent_ping_timeout; none in all of them means the master is cut
            # off (its TCP link stays open), so look for the leader again.
            silence = first.registered.ping_timeout_seconds or None
            try:
                while True:
                    try:
                        message = await asyncio.wait_for(call.read(), silence)
                    except TimeoutError:
                        raise ConnectionError(f"no word from the master in {silence:g}s") from None
                    if not isinstance(message, internal_pb2.MasterMessage):
                        raise ConnectionError("master closed the link")
                    if message.HasField("shutdown"):
                        self._shut_down(message.shutdown.message)
                    self.agent.handle(message)
            finally:
                writer.cancel()

    def _shut_down(self, why: str) -> None:
        self.refused = why
        log.error("master asked this agent to shut down: %s", why)
        self.on_refused(True, why)
        raise ConnectionError("shut down by the master")

    async def _write(self, call: grpc.aio.StreamStreamCall,  # type: ignore[type-arg]
                     outbox: asyncio.Queue[internal_pb2.AgentMessage]) -> None:
        while True:
            message = await outbox.get()
            await call.write(message)
