"""Checkpoints: what the agent writes under ``meta/`` so a restarted agent can pick up its
executors and their tasks (``--recover=reconnect``), laid out by :mod:`agent_runtime.agent.paths`.

Only frameworks with ``checkpoint`` set are written, as in Mesos. Every file is small, binary
protobuf, and written atomically, so a crash mid-write leaves the previous version. A task's
``task.updates`` holds its status update stream as the agent last knew it: the updates not yet
acknowledged, in order, and the uuids already seen (duplicates are dropped after a restart too).

The agent writes through a :class:`CheckpointWriter`, off its event loop: a write is queued with
its bytes as of the call, and one thread writes the queue in order, a batch per hop, each file
still tmp, fsync, rename. What a checkpoint records is told to nobody (the master, the executor)
before :meth:`CheckpointWriter.durable` says it is on disk.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from agent_runtime.agent import paths
from agent_runtime.errors import RuntimeErrorBase
from agent_runtime.executor_kind import ExecutorKind
from agent_runtime.files import atomic_write
from agent_runtime.ids import InvalidId
from agent_runtime.proto import internal_pb2, mesos_pb2

log = logging.getLogger(__name__)
M = TypeVar("M", bound=Message)

BOOT_ID = "/proc/sys/kernel/random/boot_id"


def boot_id() -> str:
    try:
        with open(BOOT_ID, encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return ""


@dataclass(slots=True)
class RecoveredRun:
    """One executor run as checkpointed: its process identity, its tasks and their streams."""

    framework: mesos_pb2.FrameworkInfo
    executor: mesos_pb2.ExecutorInfo
    container_id: str
    directory: str
    pid: int = 0
    start_time: float = 0.0
    tasks: dict[str, mesos_pb2.Task] = field(default_factory=dict)
    streams: dict[str, internal_pb2.UpdateStream] = field(default_factory=dict)
    kind: ExecutorKind | None = None  # None: checkpointed before the kind was written


@dataclass(slots=True)
class RecoveredState:
    agent_info: mesos_pb2.AgentInfo | None = None
    rebooted: bool = False
    runs: list[RecoveredRun] = field(default_factory=list)


class CheckpointError(RuntimeErrorBase):
    """A checkpoint cannot be read back and ``--strict`` makes that fatal."""


class CheckpointWriter:
    """Writes checkpoint files on one thread of its own, in the order they were asked for.

    ``write`` only queues (the bytes as of the call). A drain task hands the queue to the thread
    a batch at a time; what is asked meanwhile makes the next batch, so a batch on disk means
    everything asked before it is too. Within the queue a later write of a path replaces the
    earlier one, and a write of the bytes last asked for that path is skipped.
    """

    def __init__(self) -> None:
        self._queued: dict[str, bytes] = {}
        self._queued_done: asyncio.Future[None] | None = None
        self._writing: asyncio.Future[None] | None = None
        self._drain: asyncio.Task[None] | None = None
        self._last: dict[str, bytes] = {}  # what was last asked of each path still of interest
        # Its own thread: never behind the default executor's long jobs (image layers).
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    def write(self, path: str, data: bytes) -> None:
        if self._last.get(path) == data:
            return
        self._last[path] = data
        self._queued.pop(path, None)  # written where it was last asked for
        self._queued[path] = data
        loop = asyncio.get_running_loop()
        if self._queued_done is None:
            self._queued_done = loop.create_future()
        if self._drain is None:
            self._drain = loop.create_task(self._run())

    def durable(self) -> asyncio.Future[None] | None:
        """Done once everything asked so far is on disk (an OSError if it could not be);
        None when nothing is waiting. Shared: await it through ``asyncio.shield``."""
        return self._queued_done or self._writing

    def forget(self, directory: str) -> None:
        """Files under ``directory`` are of no more interest: stop remembering their bytes."""
        prefix = directory + os.sep
        for path in [p for p in self._last if p.startswith(prefix)]:
            del self._last[path]

    async def flush(self) -> None:
        """Wait until everything asked so far is on disk, or failed to be (logged)."""
        while (done := self.durable()) is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(done)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queued:
                batch, done = self._queued, self._queued_done
                assert done is not None
                self._queued, self._queued_done, self._writing = {}, None, done
                if self._pool is None:
                    self._pool = concurrent.futures.ThreadPoolExecutor(
                        max_workers=1, thread_name_prefix="checkpoint")
                try:
                    await loop.run_in_executor(self._pool, _write_all, batch)
                except Exception as exc:  # OSError; anything else must not hang the waiters
                    log.error("cannot write checkpoints: %s", exc,
                              exc_info=not isinstance(exc, OSError))
                    for path in batch:  # not on disk: the next ask must write them
                        self._last.pop(path, None)
                    if not done.done():
                        done.set_exception(exc)
                else:
                    if not done.done():
                        done.set_result(None)
        finally:
            self._writing = None
            self._drain = None


def _write_all(batch: dict[str, bytes]) -> None:
    for path, data in batch.items():
        atomic_write(path, data)


class Checkpointer:
    def __init__(self, work_dir: str, strict: bool = False,
                 writer: CheckpointWriter | None = None) -> None:
        self.work_dir = work_dir
        # --strict (Mesos's default): an unreadable checkpoint stops the agent rather than
        # letting it forget executors that may still run.
        self.strict = strict
        # None: each write is done before the call returns (tools, tests).
        self.writer = writer
        self._open_runs: set[str] = set()  # runs written by this process and not done yet

    # Writing ----------------------------------------------------------------------------------
    def agent(self, info: mesos_pb2.AgentInfo) -> None:
        agent_id = info.id.value
        self._write(os.path.join(paths.meta_agent(self.work_dir, agent_id), "slave.info"),
                           info.SerializeToString())
        self._write(paths.meta_latest(self.work_dir), agent_id.encode())
        self._write(paths.meta_boot_id(self.work_dir), boot_id().encode())

    def run(self, agent_id: str, framework: mesos_pb2.FrameworkInfo,
            executor: mesos_pb2.ExecutorInfo, container_id: str, pid: int,
            start_time: float, *, kind: ExecutorKind) -> None:
        fid, eid = framework.id.value, executor.executor_id.value
        meta = paths.meta_framework(self.work_dir, agent_id, fid)
        self._write(os.path.join(meta, "framework.info"), framework.SerializeToString())
        executor_dir = paths.meta_executor(self.work_dir, agent_id, fid, eid)
        self._write(os.path.join(executor_dir, "executor.info"),
                           executor.SerializeToString())
        # Recovery reads the kind back rather than guess it from the ExecutorInfo.
        self._write(os.path.join(executor_dir, "executor.kind"), kind.value.encode())
        run = paths.meta_run(self.work_dir, agent_id, fid, eid, container_id)
        self._open_runs.add(run)
        self._write(os.path.join(run, "pids", "forked.pid"),
                           f"{pid} {start_time!r}".encode())
        latest = os.path.join(executor_dir, "runs", "latest")
        self._write(latest, container_id.encode())

    def task(self, agent_id: str, framework_id: str, executor_id: str, container_id: str,
             task: mesos_pb2.Task) -> None:
        path = paths.meta_task(self.work_dir, agent_id, framework_id, executor_id, container_id,
                               task.task_id.value)
        self._write(os.path.join(path, "task.info"), task.SerializeToString())

    def updates(self, agent_id: str, framework_id: str, executor_id: str, container_id: str,
                task_id: str, stream: internal_pb2.UpdateStream) -> None:
        path = paths.meta_task(self.work_dir, agent_id, framework_id, executor_id, container_id,
                               task_id)
        self._write(os.path.join(path, "task.updates"), stream.SerializeToString())

    def run_done(self, agent_id: str, framework_id: str, executor_id: str,
                 container_id: str) -> None:
        """The run ended: a sentinel says so, and recovery skips it from now on."""
        run = paths.meta_run(self.work_dir, agent_id, framework_id, executor_id, container_id)
        if run in self._open_runs or os.path.isdir(run):  # its files may still be queued
            self._open_runs.discard(run)
            self._write(os.path.join(run, "executor.sentinel"), b"")
            if self.writer is not None:
                self.writer.forget(paths.meta_executor(self.work_dir, agent_id, framework_id,
                                                       executor_id))

    def _write(self, path: str, data: bytes) -> None:
        if self.writer is None:
            atomic_write(path, data)
        else:
            self.writer.write(path, data)

    # Reading ----------------------------------------------------------------------------------
    def recover(self) -> RecoveredState:
        state = RecoveredState()
        try:
            with open(paths.meta_latest(self.work_dir), "rb") as handle:
                agent_id = handle.read().decode().strip()
        except OSError:
            return state  # a fresh agent
        try:
            with open(paths.meta_boot_id(self.work_dir), "rb") as handle:
                state.rebooted = handle.read().decode().strip() != boot_id()
        except OSError:
            state.rebooted = False
        info = mesos_pb2.AgentInfo()
        try:
            with open(os.path.join(paths.meta_agent(self.work_dir, agent_id), "slave.info"),
                      "rb") as handle:
                info.ParseFromString(handle.read())
        except (OSError, ValueError, InvalidId) as exc:
            log.warning("no usable checkpoint of agent %s (%s); starting afresh", agent_id, exc)
            return state
        state.agent_info = info
        if not state.rebooted:
            state.runs = list(self._runs(agent_id))
        return state

    def _runs(self, agent_id: str) -> Iterator[RecoveredRun]:
        frameworks = os.path.join(paths.meta_agent(self.work_dir, agent_id), "frameworks")
        for fid in _listdir(frameworks):
            framework = self._read(os.path.join(frameworks, fid, "framework.info"),
                                   mesos_pb2.FrameworkInfo)
            if framework is None:
                continue
            executors = os.path.join(frameworks, fid, "executors")
            for eid in _listdir(executors):
                executor = self._read(os.path.join(executors, eid, "executor.info"),
                                      mesos_pb2.ExecutorInfo)
                try:
                    with open(os.path.join(executors, eid, "runs", "latest"), "rb") as handle:
                        container_id = handle.read().decode().strip()
                except OSError:
                    continue
                try:
                    run_dir = paths.meta_run(self.work_dir, agent_id, fid, eid, container_id)
                    if executor is None or os.path.exists(
                            os.path.join(run_dir, "executor.sentinel")):
                        continue
                    run = self._run(agent_id, framework, executor, container_id, run_dir)
                    run.kind = self._kind(os.path.join(executors, eid, "executor.kind"))
                except InvalidId as exc:
                    # Only an older agent, which took any ID, can have written it: that run's
                    # paths cannot be trusted, the rest of the agent's can.
                    log.warning("ignoring the checkpointed run of executor %r: %s", eid, exc)
                    continue
                yield run

    def _run(self, agent_id: str, framework: mesos_pb2.FrameworkInfo,
             executor: mesos_pb2.ExecutorInfo, container_id: str, run_dir: str) -> RecoveredRun:
        fid, eid = framework.id.value, executor.executor_id.value
        run = RecoveredRun(framework, executor, container_id,
                           paths.sandbox(self.work_dir, agent_id, fid, eid, container_id))
        try:
            with open(os.path.join(run_dir, "pids", "forked.pid"), "rb") as handle:
                pid, start = handle.read().decode().split()
                run.pid, run.start_time = int(pid), float(start)
        except (OSError, ValueError):
            pass
        tasks_dir = os.path.join(run_dir, "tasks")
        for tid in _listdir(tasks_dir):
            task = self._read(os.path.join(tasks_dir, tid, "task.info"), mesos_pb2.Task)
            if task is not None:
                run.tasks[tid] = task
            stream = self._read(os.path.join(tasks_dir, tid, "task.updates"),
                                internal_pb2.UpdateStream)
            if stream is not None:
                run.streams[tid] = stream
        return run

    def _kind(self, path: str) -> ExecutorKind | None:
        try:
            with open(path, "rb") as handle:
                text = handle.read().decode("ascii", "replace").strip()
        except FileNotFoundError:
            return None  # an older agent's checkpoint: recovery falls back to the rule
        except OSError as exc:
            if self.strict:
                raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
            log.warning("ignoring unreadable checkpoint %s: %s", path, exc)
            return None
        try:
            return ExecutorKind(text)
        except ValueError:
            log.warning("ignoring checkpoint %s: unknown executor kind %r", path, text)
            return None

    def _read(self, path: str, cls: type[M]) -> M | None:
        try:
            with open(path, "rb") as handle:
                message = cls()
                message.ParseFromString(handle.read())
                return message
        except FileNotFoundError:
            return None
        except (OSError, ValueError, DecodeError) as exc:
            if self.strict:
                raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
            log.warning("ignoring unreadable checkpoint %s: %s", path, exc)
            return None


def _listdir(path: str) -> list[str]:
    try:
        return sorted(name for name in os.listdir(path) if not name.startswith("."))
    except OSError:
        return []
