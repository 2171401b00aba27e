"""Nested container sessions: commands an operator runs inside a running task's container
(``LAUNCH_NESTED_CONTAINER_SESSION``), their output fanned out to every attached stream, their
input taken from one ``ATTACH_CONTAINER_INPUT`` stream at a time, their exit waited on.

A session is named ``parent.value``/``value`` of its ContainerID; the parent is a live
executor's container. A session ends with its command, when its launching connection breaks
(as in Mesos: it is killed), when it is killed, or with its parent's executor. An ended one is
kept, with its wait status, for WAIT calls; the latest :data:`KEPT` of them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import signal
from dataclasses import dataclass, field

from agent_runtime.agent.agent import Agent
from agent_runtime.agent.model import Executor, ExecutorState
from agent_runtime.containerizer.sessions import STDERR, Session, SessionHost, SessionRequest
from agent_runtime.errors import BadRequest, Conflict, NotFound
from agent_runtime.ids import check_id
from agent_runtime.proto import agent_pb2, mesos_pb2

log = logging.getLogger(__name__)

ProcessIO = agent_pb2.ProcessIO
KEPT = 100
MAX_ARGV = 4096


def data(kind: str, chunk: bytes) -> ProcessIO:
    out = ProcessIO(type=ProcessIO.DATA)
    out.data.type = ProcessIO.Data.STDERR if kind == STDERR else ProcessIO.Data.STDOUT
    out.data.data = chunk
    return out


@dataclass
class NestedContainer:
    parent: str
    id: str
    session: Session
    subscribers: list[asyncio.Queue[ProcessIO | None]] = field(default_factory=list)
    status: asyncio.Future[int] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())
    output_ended: bool = False
    input_attached: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return self.parent, self.id

    def subscribe(self) -> asyncio.Queue[ProcessIO | None]:
        queue: asyncio.Queue[ProcessIO | None] = asyncio.Queue()
        if self.output_ended:
            queue.put_nowait(None)
        else:
            self.subscribers.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[ProcessIO | None]) -> None:
        with contextlib.suppress(ValueError):
            self.subscribers.remove(queue)


def request_of(command: mesos_pb2.CommandInfo, container: mesos_pb2.ContainerInfo | None
               ) -> SessionRequest:
    """The command to run, as Mesos reads a CommandInfo: through ``/bin/sh -c`` unless
    ``shell`` is false, then ``value`` with ``arguments`` (``arguments[0]`` is its argv[0])."""
    if not command.value:
        raise BadRequest("Expecting 'command.value' to be present")
    argv: tuple[str, ...]
    if not command.HasField("shell") or command.shell:
        argv = ("/bin/sh", "-c", command.value)
    else:
        argv = (command.value, *list(command.arguments)[1:])
    if len(argv) > MAX_ARGV or any("\x00" in arg for arg in argv):
        raise BadRequest("'command' has too many arguments or a NUL byte in one")
    environment = {}
    for variable in command.environment.variables:
        if variable.type == mesos_pb2.Environment.Variable.SECRET:
            raise BadRequest("Secret environment variables are not supported here")
        if not variable.name or "=" in variable.name or "\x00" in variable.name + variable.value:
            raise BadRequest(f"Invalid environment variable name {variable.name[:64]!r}")
        environment[variable.name] = variable.value
    user = command.user if command.HasField("user") and command.user else None
    tty = container is not None and container.HasField("tty_info")
    return SessionRequest(argv, environment, tty, user)


class NestedContainers:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self._live: dict[tuple[str, str], NestedContainer] = {}
        self._ended: collections.OrderedDict[tuple[str, str], NestedContainer] = \
            collections.OrderedDict()

    def parent(self, container_id: str) -> Executor:
        for executor in self.agent.table.executors():
            if executor.container_id == container_id:
                if executor.process is None or executor.state == ExecutorState.TERMINATED:
                    break
                return executor
        raise NotFound(f"Container {container_id[:200]} is not running on this agent")

    @staticmethod
    def key(container_id: mesos_pb2.ContainerID, field_name: str) -> tuple[str, str]:
        """``(parent, id)`` of a nested ContainerID; 400 for a top-level or doubly nested one."""
        if not container_id.value:
            raise BadRequest(f"Expecting '{field_name}.value' to be present")
        if not container_id.HasField("parent") or not container_id.parent.value:
            raise BadRequest(f"'{field_name}' names no parent: only nested containers "
                             "(sessions) are launched, waited on or killed here")
        if container_id.parent.HasField("parent"):
            raise BadRequest(f"'{field_name}': sessions nest one level under a task's "
                             "container")
        return (check_id(container_id.parent.value, f"{field_name}.parent"),
                check_id(container_id.value, field_name))

    def find(self, key: tuple[str, str]) -> NestedContainer:
        found = self._live.get(key) or self._ended.get(key)
        if found is None:
            raise NotFound(f"Container {key[0]}.{key[1]} is not known to this agent")
        return found

    async def launch(self, key: tuple[str, str], request: SessionRequest) -> NestedContainer:
        if key in self._live or key in self._ended:
            raise Conflict(f"Container {key[0]}.{key[1]} already exists")
        executor = self.parent(key[0])
        containerizer = self.agent.containerizer
        if not isinstance(containerizer, SessionHost):
            raise Conflict("This agent's containerizer cannot run commands in its containers")
        session = await containerizer.launch_session(key[0], request)
        nested = NestedContainer(key[0], key[1], session)
        self._live[key] = nested
        asyncio.get_running_loop().create_task(self._run(nested, executor))
        return nested

    async def _run(self, nested: NestedContainer, executor: Executor) -> None:
        assert executor.process is not None
        parent_gone = executor.process.exited
        killers: set[asyncio.Task[None]] = set()

        def parent_exited(_: object) -> None:
            # A session does not outlive its task's container (Mesos destroys nested ones).
            if not nested.status.done():
                killers.add(asyncio.ensure_future(nested.session.kill(signal.SIGKILL)))

        parent_gone.add_done_callback(parent_exited)
        try:
            while (chunk := await nested.session.read()) is not None:
                message = data(*chunk)
                for queue in nested.subscribers:
                    queue.put_nowait(message)
        except Exception:
            log.exception("session %s.%s: reading its output failed", *nested.key)
        finally:
            nested.output_ended = True
            for queue in nested.subscribers:
                queue.put_nowait(None)
            nested.subscribers.clear()
        try:
            nested.status.set_result(await nested.session.wait())
        finally:
            parent_gone.remove_done_callback(parent_exited)
            self._live.pop(nested.key, None)
            self._ended[nested.key] = nested
            while len(self._ended) > KEPT:
                self._ended.popitem(last=False)

    async def kill(self, key: tuple[str, str], signum: int) -> None:
        nested = self.find(key)
        if not nested.status.done():
            await nested.session.kill(signum)

    async def feed(self, nested: NestedContainer, message: ProcessIO) -> None:
        """One message of an input stream: stdin data (empty: end of input), a window size,
        a heartbeat."""
        if message.type == ProcessIO.DATA:
            if message.data.type != ProcessIO.Data.STDIN:
                raise BadRequest("Input data must be of type STDIN")
            if message.data.data:
                await nested.session.write(message.data.data)
            else:
                await nested.session.close_input()
        elif message.type == ProcessIO.CONTROL:
            control = message.control
            if control.type == ProcessIO.Control.TTY_INFO:
                size = control.tty_info.window_size
                if size.rows > 0xFFFF or size.columns > 0xFFFF:
                    raise BadRequest("Window size out of range")
                await nested.session.resize(size.rows, size.columns)
            elif control.type != ProcessIO.Control.HEARTBEAT:
                raise BadRequest("Expecting a control message of type TTY_INFO or HEARTBEAT")
        else:
            raise BadRequest("Expecting 'process_io.type' to be DATA or CONTROL")

    def containers(self) -> list[NestedContainer]:
        return list(self._live.values())


__all__ = ["NestedContainer", "NestedContainers", "data", "request_of"]
