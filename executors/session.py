"""An executor's side of the v1 executor API, whatever runs its task.

:class:`ExecutorSession` subscribes to the agent, sends status updates and keeps the ones not
yet acknowledged, re-subscribes after an agent restart (checkpointing frameworks only), and
runs the main loop. What the task *is* belongs to a :class:`TaskRunner` given to
:meth:`ExecutorSession.run`: a process (``command.py``) or a Docker container
(``docker_executor.py``). The session asks the runner; the runner reports through the session
(``update``, and entries it puts on ``events``, which come back to it through ``event``).

The executor leaves once its terminal update is acknowledged (or after ``ACK_WAIT`` seconds:
the agent keeps retrying the update on its own), or when the agent asks it to shut down.
Standard library only (started with ``python -S``; see ``command.py``).
"""

from __future__ import annotations

import binascii
import os
import queue
import sys
import threading
import time

from .agent_client import AgentConnection, read_events

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol

    Json = Any

    class TaskRunner(Protocol):
        kind: str  # "command" or "docker", for messages

        def launch(self, task: dict[str, Json]) -> None:
            """Start the task LAUNCH gave (the session has recorded it)."""

        def launched(self) -> bool:
            """Whether the task runs (a kill before that needs no signal)."""

        def kill(self, grace: float | None) -> None:
            """Kill the running task; ``grace`` None: its kill policy's, else the default."""

        def exited(self, status: int) -> tuple[str, str, str | None]:
            """The terminal ``(state, message, reason)`` for an exit ``status``."""

        def event(self, kind: str, payload: Json) -> None:
            """An entry of a kind the runner put on the session's queue."""

        def deadline(self) -> float | None:
            """When (monotonic) ``expired`` is due, if ever."""

        def expired(self) -> None:
            """The deadline passed (the kill's grace, for a process)."""

        def resubscribed(self) -> None:
            """Back with a restarted agent."""

        def disconnected(self) -> None:
            """The agent is gone for good: the executor is about to exit."""

ACK_WAIT = 2.0
NANOS = 1_000_000_000
TERMINAL = ("TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR")


def parse_duration(text: str, default: float) -> float:
    """Mesos durations as the agent writes them (``5secs``, ``100ms``, ``2mins``)."""
    # Longest first: "2mins" ends in "ns" too.
    units = (("weeks", 604800.0), ("days", 86400.0), ("mins", 60.0), ("secs", 1.0),
             ("hrs", 3600.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9))
    text = text.strip()
    for suffix, scale in units:
        if text.endswith(suffix):
            try:
                return float(text[: -len(suffix)]) * scale
            except ValueError:
                return default
    return default


def policy_grace(kill_policy: dict[str, Json] | None) -> float | None:
    """The grace period of a KillPolicy, in seconds; None when it sets none."""
    grace = (kill_policy or {}).get("grace_period")
    return int(grace.get("nanoseconds", 0)) / NANOS if grace else None


class ExecutorSession:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.agent = AgentConnection(env["MESOS_AGENT_ENDPOINT"], env["MESOS_FRAMEWORK_ID"],
                                     env["MESOS_EXECUTOR_ID"],
                                     env.get("MESOS_EXECUTOR_AUTHENTICATION_TOKEN"))
        self.sandbox = env.get("MESOS_SANDBOX") or os.getcwd()
        self.shutdown_grace = parse_duration(
            env.get("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", ""), 5.0)
        self.events: queue.Queue[Json] = queue.Queue()
        self.task: dict[str, Json] | None = None
        self.terminal_uuid: str | None = None
        self.terminal_sent_at: float | None = None
        self.unacknowledged: dict[str, dict[str, Json]] = {}
        self.acknowledged_any = False
        # With checkpointing the executor outlives an agent restart: it keeps its task and
        # re-subscribes (with what was not acknowledged) until the recovery timeout.
        self.checkpoint = env.get("MESOS_CHECKPOINT") == "1"
        self.recovery_timeout = parse_duration(env.get("MESOS_RECOVERY_TIMEOUT", ""), 900.0)
        self.retry_interval = min(1.0, max(0.1, parse_duration(
            env.get("MESOS_SUBSCRIPTION_BACKOFF_MAX", ""), 2.0) / 2))

    # Status updates ---------------------------------------------------------------------
    def update(self, state: str, message: str | None = None, reason: str | None = None) -> None:
        assert self.task is not None
        status: dict[str, Json] = {
            "task_id": self.task["task_id"], "state": state, "source": "SOURCE_EXECUTOR",
            "executor_id": {"value": self.agent.executor_id},
            "uuid": binascii.b2a_base64(os.urandom(16), newline=False).decode(),
            "timestamp": time.time(),
        }
        if message:
            status["message"] = message
        if reason:
            status["reason"] = reason
        self.unacknowledged[status["uuid"]] = status
        terminal = state in TERMINAL
        if terminal:
            self.terminal_uuid = status["uuid"]
        try:
            self.agent.post("UPDATE", update={"status": status})
        except (OSError, ValueError, IndexError, RuntimeError):
            if not self.checkpoint:
                raise
            return  # the agent is away: the update goes with the next SUBSCRIBE
        if terminal:
            self.terminal_sent_at = time.monotonic()

    # Events -----------------------------------------------------------------------------
    def _launch(self, runner: TaskRunner, task: dict[str, Json]) -> None:
        if self.task is not None:
            # One task per executor of ours, as in Mesos.
            self.task, first = task, self.task
            self.update("TASK_ERROR", f"Attempted to run multiple tasks using a {runner.kind} "
                                      "executor")
            self.task = first
            return
        self.task = task
        runner.launch(task)

    def _kill(self, runner: TaskRunner, grace: float | None) -> None:
        if self.task is None or self.terminal_uuid is not None:
            return
        if not runner.launched():
            self.update("TASK_KILLED", "Task killed before it started")
            return
        runner.kill(grace)

    def handle(self, runner: TaskRunner, event: dict[str, Json]) -> bool:
        """Act on one event; False when the executor should stop."""
        kind = event.get("type")
        if kind == "LAUNCH":
            self._launch(runner, event["launch"]["task"])
        elif kind == "KILL":
            self._kill(runner, policy_grace(event.get("kill", {}).get("kill_policy")))
        elif kind == "ACKNOWLEDGED":
            acked = event["acknowledged"]["uuid"]
            self.unacknowledged.pop(acked, None)
            self.acknowledged_any = True
            if acked == self.terminal_uuid:
                return False
        elif kind == "SHUTDOWN":
            self._kill(runner, self.shutdown_grace)
            if not runner.launched():
                return False
        elif kind == "ERROR":
            print(f"agent error: {event.get('error', {}).get('message')}", file=sys.stderr)
        return True

    # Main loop --------------------------------------------------------------------------
    def _subscribe(self) -> None:
        tasks = [self.task] if self.task is not None and not self.acknowledged_any else None
        stream = self.agent.subscribe(list(self.unacknowledged.values()), tasks)
        threading.Thread(target=read_events, args=(stream, self.events), daemon=True).start()
        if self.terminal_uuid is not None and self.terminal_uuid in self.unacknowledged:
            # The terminal update went with the SUBSCRIBE: now wait for its acknowledgement.
            self.terminal_sent_at = time.monotonic()

    def _resubscribe(self) -> bool:
        """The agent went away: try again until the recovery timeout (checkpointing only)."""
        if not self.checkpoint:
            return False
        deadline = time.monotonic() + self.recovery_timeout
        while time.monotonic() < deadline:
            time.sleep(self.retry_interval)
            try:
                self._subscribe()
            except (OSError, ValueError, IndexError, RuntimeError):
                continue
            return True
        return False

    def run(self, runner: TaskRunner) -> int:
        self._subscribe()
        while True:
            try:
                kind, payload = self.events.get(timeout=self._next_timeout(runner))
            except queue.Empty:
                if self._on_timeout(runner):
                    return 0
                continue
            if kind == "event":
                if not self.handle(runner, payload):
                    return 0
            elif kind == "exited":
                self.update(*runner.exited(payload))
            elif kind == "disconnected":
                if self._resubscribe():
                    runner.resubscribed()
                    continue
                runner.disconnected()
                return 1
            else:
                runner.event(kind, payload)

    def _next_timeout(self, runner: TaskRunner) -> float | None:
        now = time.monotonic()
        deadlines = [d for d in (runner.deadline(),
                                 self.terminal_sent_at and self.terminal_sent_at + ACK_WAIT)
                     if d]
        return max(0.0, min(deadlines) - now) if deadlines else None

    def _on_timeout(self, runner: TaskRunner) -> bool:
        now = time.monotonic()
        if self.terminal_sent_at is not None and now >= self.terminal_sent_at + ACK_WAIT:
            return True
        deadline = runner.deadline()
        if deadline is not None and now >= deadline:
            runner.expired()
        return False
