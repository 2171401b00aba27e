"""An executor's side of the v1 executor API, whatever runs its task.

:class:`ExecutorSession` subscribes to the agent, sends status updates and keeps the ones not
yet acknowledged, re-subscribes after an agent restart (checkpointing frameworks only), and
runs the main loop. What the task *is* belongs to a :class:`TaskRunner` given to
:meth:`ExecutorSession.run`: a process (``command.py``), a Docker container
(``docker_executor.py``), or the tasks of task groups (``default.py``, the one runner with
``groups``: LAUNCH_GROUP, many tasks). The session asks the runner; the runner reports
through the session (``update``, and entries it puts on ``events``, which come back to it
through ``event``).

The executor leaves once every task's terminal update is acknowledged (or ``ACK_WAIT`` seconds
after the last was sent: the agent keeps retrying it on its own), or when the agent asks it to
shut down. The session also owns what is the same for every kind of task: TASK_KILLING before
a kill (frameworks with TASK_KILLING_STATE), health checks and checks (``checks.py``), and
``healthy=false`` on the terminal update of a task its health check killed.
Standard library only (started with ``python -S``; see ``command.py``).
"""

from __future__ import annotations

import binascii
import os
import queue
import sys
import threading
import time

from . import checks
from .agent_client import AgentConnection, read_events

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol

    Json = Any

    class TaskRunner(Protocol):
        kind: str  # "command", "docker" or "default", for messages
        groups: bool  # takes LAUNCH_GROUP (and many tasks), not LAUNCH

        def launch(self, task: dict[str, Json]) -> None:
            """Start the task LAUNCH gave (the session has recorded it)."""

        def launch_group(self, tasks: list[dict[str, Json]]) -> None:
            """Start the tasks of a LAUNCH_GROUP (``groups`` runners only)."""

        def launched(self, task_id: str) -> bool:
            """Whether the task runs (a kill before that needs no signal)."""

        def kill(self, task_id: str, grace: float | None) -> None:
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


REQUIRED = ("MESOS_AGENT_ENDPOINT", "MESOS_FRAMEWORK_ID", "MESOS_EXECUTOR_ID")


def from_environment(kind: str, extra: tuple[str, ...] = ()) -> ExecutorSession | None:
    """The session the agent's environment describes; None (after one line naming what is
    missing) when this process was not started by an agent."""
    missing = [name for name in (*REQUIRED, *extra) if name not in os.environ]
    if missing:
        print(f"{kind} executor: missing environment {', '.join(missing)}", file=sys.stderr)
        return None
    return ExecutorSession(dict(os.environ))


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
        self.tasks: dict[str, dict[str, Json]] = {}  # every task given, in order
        self.terminals: dict[str, str] = {}  # task id -> uuid of its terminal update
        self.acknowledged_terminals: set[str] = set()  # of those uuids
        self.terminal_sent_at: float | None = None  # when the last task's terminal went
        self.killing_state = False  # the framework has TASK_KILLING_STATE
        self.killing: set[str] = set()  # tasks told TASK_KILLING
        self.health_killed: set[str] = set()  # tasks their health check killed
        self.checkers: dict[str, list[checks.CheckThread]] = {}
        self.unacknowledged: dict[str, dict[str, Json]] = {}
        self.acknowledged_any = False
        # With checkpointing the executor outlives an agent restart: it keeps its task and
        # re-subscribes (with what was not acknowledged) until the recovery timeout.
        self.checkpoint = env.get("MESOS_CHECKPOINT") == "1"
        self.recovery_timeout = parse_duration(env.get("MESOS_RECOVERY_TIMEOUT", ""), 900.0)
        self.retry_interval = min(1.0, max(0.1, parse_duration(
            env.get("MESOS_SUBSCRIPTION_BACKOFF_MAX", ""), 2.0) / 2))

    @property
    def task(self) -> dict[str, Json] | None:
        """The first task (a command or docker executor's only one)."""
        return next(iter(self.tasks.values()), None)

    @property
    def terminal_uuid(self) -> str | None:
        task = self.task
        return None if task is None else self.terminals.get(task["task_id"]["value"])

    def _all_terminal(self) -> bool:
        return bool(self.tasks) and all(t in self.terminals for t in self.tasks)

    # Status updates ---------------------------------------------------------------------
    def update(self, state: str, message: str | None = None, reason: str | None = None, *,
               task_id: str | None = None, healthy: bool | None = None,
               check_status: dict[str, Json] | None = None) -> None:
        if task_id is None:
            assert self.task is not None
            task_id = str(self.task["task_id"]["value"])
        terminal = state in TERMINAL
        if terminal:
            self.stop_checks(task_id)
            if task_id in self.health_killed:
                healthy = False
        status: dict[str, Json] = {
            "task_id": {"value": task_id}, "state": state, "source": "SOURCE_EXECUTOR",
            "executor_id": {"value": self.agent.executor_id},
            "uuid": binascii.b2a_base64(os.urandom(16), newline=False).decode(),
            "timestamp": time.time(),
        }
        if message:
            status["message"] = message
        if reason:
            status["reason"] = reason
        if healthy is not None:
            status["healthy"] = healthy
        if check_status is not None:
            status["check_status"] = check_status
        self.unacknowledged[status["uuid"]] = status
        if terminal:
            self.terminals[task_id] = status["uuid"]
        try:
            self.agent.post("UPDATE", update={"status": status})
        except (OSError, ValueError, IndexError, RuntimeError):
            if not self.checkpoint:
                raise
            return  # the agent is away: the update goes with the next SUBSCRIBE
        if terminal and self._all_terminal():
            self.terminal_sent_at = time.monotonic()

    # Health checks and checks -----------------------------------------------------------
    def start_checks(self, task: dict[str, Json], run_command: checks.RunCommand,
                     host: str = "127.0.0.1") -> None:
        """Once the task runs: its health check and check, if it has them."""
        task_id = str(task["task_id"]["value"])
        if task_id not in self.terminals:
            self.checkers[task_id] = checks.start(task, self.events, run_command, host)

    def stop_checks(self, task_id: str) -> None:
        for checker in self.checkers.pop(task_id, []):
            checker.stop()

    def _health(self, runner: TaskRunner, result: dict[str, Json]) -> None:
        task_id = str(result["task_id"])
        if task_id in self.terminals or task_id in self.killing or \
                task_id in self.health_killed:
            return  # no TASK_RUNNING after TASK_KILLING or a terminal state
        self.update("TASK_RUNNING", str(result["message"]),
                    "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED", task_id=task_id,
                    healthy=bool(result["healthy"]))
        if result["kill"]:
            self.health_killed.add(task_id)
            self._kill(runner, None, task_id)

    def _check(self, result: dict[str, Json]) -> None:
        task_id = str(result["task_id"])
        if task_id in self.terminals or task_id in self.killing:
            return
        self.update("TASK_RUNNING", None, "REASON_TASK_CHECK_STATUS_UPDATED",
                    task_id=task_id, check_status=result["check_status"])

    # Events -----------------------------------------------------------------------------
    def _launch(self, runner: TaskRunner, tasks: list[dict[str, Json]], group: bool) -> None:
        ids = [str(task["task_id"]["value"]) for task in tasks]
        error = None
        if group and not runner.groups:
            error = f"Attempted to run a task group using a {runner.kind} executor"
        elif not group and runner.groups:
            error = f"Attempted to run a single task using a {runner.kind} executor"
        elif not group and self.tasks:
            # One task per command or docker executor, as in Mesos.
            error = f"Attempted to run multiple tasks using a {runner.kind} executor"
        elif any(task_id in self.tasks for task_id in ids) or len(set(ids)) != len(ids):
            error = "Attempted to run a task twice"
        if error is not None:
            for task_id in ids:
                if task_id not in self.tasks:
                    self.update("TASK_ERROR", error, task_id=task_id)
            return
        for task_id, task in zip(ids, tasks, strict=True):
            self.tasks[task_id] = task
        if group:
            runner.launch_group(tasks)
        else:
            runner.launch(tasks[0])

    def _kill(self, runner: TaskRunner, grace: float | None, task_id: str | None) -> None:
        if task_id is None or not runner.groups:
            task = self.task  # a command or docker executor's one task, whatever the id
            task_id = None if task is None else str(task["task_id"]["value"])
        if task_id is None or task_id not in self.tasks or task_id in self.terminals:
            return
        if not runner.launched(task_id):
            self.update("TASK_KILLED", "Task killed before it started", task_id=task_id)
            return
        self.stop_checks(task_id)
        if self.killing_state and task_id not in self.killing:
            self.update("TASK_KILLING", task_id=task_id)
        self.killing.add(task_id)
        runner.kill(task_id, grace)

    def _running(self, runner: TaskRunner) -> list[str]:
        return [t for t in self.tasks if t not in self.terminals and runner.launched(t)]

    def handle(self, runner: TaskRunner, event: dict[str, Json]) -> bool:
        """Act on one event; False when the executor should stop."""
        kind = event.get("type")
        if kind == "SUBSCRIBED":
            capabilities = event.get("subscribed", {}).get("framework_info", {}).get(
                "capabilities", [])
            self.killing_state = any(c.get("type") == "TASK_KILLING_STATE"
                                     for c in capabilities)
        elif kind == "LAUNCH":
            self._launch(runner, [event["launch"]["task"]], group=False)
        elif kind == "LAUNCH_GROUP":
            self._launch(runner, list(event["launch_group"]["task_group"].get("tasks", [])),
                         group=True)
        elif kind == "KILL":
            kill = event.get("kill", {})
            self._kill(runner, policy_grace(kill.get("kill_policy")),
                       kill.get("task_id", {}).get("value"))
        elif kind == "ACKNOWLEDGED":
            acked = event["acknowledged"]["uuid"]
            self.unacknowledged.pop(acked, None)
            self.acknowledged_any = True
            if acked in self.terminals.values():
                self.acknowledged_terminals.add(acked)
                if self._all_terminal() and \
                        set(self.terminals.values()) <= self.acknowledged_terminals:
                    return False
        elif kind == "SHUTDOWN":
            for task_id in list(self.tasks):
                self._kill(runner, self.shutdown_grace, task_id)
            if not self._running(runner):
                return False
        elif kind == "ERROR":
            print(f"agent error: {event.get('error', {}).get('message')}", file=sys.stderr)
        return True

    # Main loop --------------------------------------------------------------------------
    def _subscribe(self) -> None:
        tasks = list(self.tasks.values()) if not self.acknowledged_any else None
        stream = self.agent.subscribe(list(self.unacknowledged.values()), tasks)
        threading.Thread(target=read_events, args=(stream, self.events), daemon=True).start()
        if self._all_terminal() and any(u in self.unacknowledged
                                        for u in self.terminals.values()):
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
            elif kind == "health":
                self._health(runner, payload)
            elif kind == "check":
                self._check(payload)
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
        if self.terminal_sent_at is not None and now >= self.terminal_sent_at + ACK_WAIT \
                and self._all_terminal():
            return True
        deadline = runner.deadline()
        if deadline is not None and now >= deadline:
            runner.expired()
        return False
