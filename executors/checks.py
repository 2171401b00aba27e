"""Health checks (``HealthCheck``) and checks (``CheckInfo``) of a running task, for every
executor of ours (command, docker, default). Standard library only (``python -S``).

One thread per check of a task, reporting through the session's event queue, so the session
(one thread) sends every status update:

- a health check waits ``delay_seconds`` (15), then probes every ``interval_seconds`` (10),
  each probe given ``timeout_seconds`` (20). A success makes the task healthy (reported when
  that changes); a failure is ignored while the task has never been healthy and is within
  ``grace_period_seconds`` (10) of its start; any other failure is reported unhealthy, and the
  ``consecutive_failures``-th (3) in a row asks the session to kill the task. Events:
  ``("health", {"task_id", "healthy", "kill", "message"})``.
- a check probes on the same schedule and reports its result (``check_status``) when it
  changes: ``("check", {"task_id", "check_status"})``.

Probes: COMMAND runs the command where the executor runs its task (``run_command``: on the host
for a task without an image, inside the image container for one with an image, ``docker exec``
for the docker executor) and succeeds on exit 0; HTTP GETs ``http://<host>:<port><path>`` and
succeeds on 200-399, as Mesos; TCP succeeds when a connection opens.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time

from .agent_client import HttpConnection
from .commandinfo import ROOTFS_LAUNCH, command_argv, command_variables

TYPE_CHECKING = False
if TYPE_CHECKING:
    import queue
    from collections.abc import Callable
    from typing import Any

    Json = Any
    # (CommandInfo as JSON, timeout) -> exit status; None when it timed out or did not start.
    RunCommand = Callable[[dict[str, Json], float], int | None]


def _run(argv: list[str], env: dict[str, str], cwd: str, timeout: float) -> int | None:
    """In a session of its own, so that a timeout kills all it started."""
    try:
        process = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True)
    except OSError:
        return None
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return None


def local_command(env: dict[str, str], cwd: str) -> RunCommand:
    """Run a check's command as a task of this executor without an image runs (its
    environment, its sandbox), on the host as the task is."""

    def run(command: dict[str, Json], timeout: float) -> int | None:
        return _run(command_argv(command)[0], {**env, **command_variables(command)}, cwd,
                    timeout)

    return run


def container_command(helper: list[str], env: dict[str, str], launch: dict[str, Json],
                      init: Callable[[], int | None]) -> RunCommand:
    """Run a check's command inside the task's image container, as Mesos does: ``helper``
    (rootfs.py) joins the namespaces and root of the container's init (``init()``: its pid,
    None once it is gone), then takes the task's user and confinement (capabilities, seccomp,
    no_new_privs) before it execs the command. So a check sees the task's files, not the
    host's, and can do no more than the task could."""

    def run(command: dict[str, Json], timeout: float) -> int | None:
        pid = init()
        if pid is None:
            return None
        join = {"join": pid, "argv": command_argv(command)[0],
                "environment": {**launch.get("environment", {}), **command_variables(command)},
                "working_dir": launch.get("working_dir") or launch.get("mount_point"),
                "mount_point": launch.get("mount_point"), "user": launch.get("user"),
                "security": launch.get("security", {})}
        return _run(helper, {**env, ROOTFS_LAUNCH: json.dumps(join)}, "/", timeout)

    return run


def init_of(pid: int) -> int | None:
    """The init of an image task's pid namespace: the one child of ``unshare --fork`` (pid)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as file:
            children = file.read().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def http_status(host: str, port: int, path: str, timeout: float) -> int | None:
    """The status code of ``GET path``. With the executors' own minimal client, not
    ``http.client``: that one (with ``email`` and ``ssl``) would sit in the fork server, made
    ~5 MB bigger, and so slower to fork and heavier in every executor, for checks few tasks have."""
    try:
        connection = HttpConnection(f"{host}:{port}", timeout)
    except (OSError, ValueError):
        return None
    try:
        status, _ = connection.send("GET", path or "/", b"")
        return status
    except (OSError, ValueError, IndexError):
        return None
    finally:
        connection.close()


def tcp_open(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


class Probe:
    """One check's target and how to try it; ``try_once`` returns (ok, check_status, detail)."""

    def __init__(self, spec: dict[str, Json], health: bool, run_command: RunCommand,
                 host: str) -> None:
        self.kind = str(spec.get("type", ""))
        self.spec = spec
        self.health = health
        self.run_command = run_command
        self.host = host

    def try_once(self, timeout: float) -> tuple[bool, dict[str, Json], str]:
        spec = self.spec
        if self.kind == "COMMAND":
            command = spec.get("command", {}) if self.health else \
                spec.get("command", {}).get("command", {})
            code = self.run_command(command, timeout)
            result: dict[str, Json] = {} if code is None else {"exit_code": code}
            detail = f"command timed out after {timeout:g}s" if code is None else \
                f"command exited with status {code}"
            return code == 0, {"type": "COMMAND", "command": result}, detail
        if self.kind == "HTTP":
            http = spec.get("http", {})
            port = int(http.get("port", 0))
            status = http_status(self.host, port, str(http.get("path", "/")), timeout)
            result = {} if status is None else {"status_code": status}
            detail = f"HTTP GET on port {port} " + \
                ("failed" if status is None else f"answered {status}")
            return status is not None and 200 <= status < 400, {"type": "HTTP",
                                                                "http": result}, detail
        port = int(spec.get("tcp", {}).get("port", 0))
        opened = tcp_open(self.host, port, timeout)
        detail = f"TCP connection to port {port} " + ("opened" if opened else "failed")
        return opened, {"type": "TCP", "tcp": {"succeeded": opened}}, detail


class CheckThread(threading.Thread):
    """Runs one health check or check of one task until ``stop`` (or a kill it asked for)."""

    def __init__(self, task_id: str, spec: dict[str, Json], health: bool,
                 events: queue.Queue[Json], run_command: RunCommand, host: str) -> None:
        super().__init__(daemon=True, name=f"{'health' if health else 'check'}-{task_id}")
        self.task_id = task_id
        self.health = health
        self.events = events
        self.probe = Probe(spec, health, run_command, host)
        self.delay = float(spec.get("delay_seconds", 15.0))
        self.interval = float(spec.get("interval_seconds", 10.0))
        self.timeout = float(spec.get("timeout_seconds", 20.0))
        self.grace = float(spec.get("grace_period_seconds", 10.0))
        self.failures_to_kill = max(1, int(spec.get("consecutive_failures", 3)))
        self.stopped = threading.Event()

    def stop(self) -> None:
        self.stopped.set()

    def run(self) -> None:
        started = time.monotonic()
        healthy: bool | None = None
        failures = 0
        last_status: dict[str, Json] | None = None
        if self.stopped.wait(self.delay):
            return
        while not self.stopped.is_set():
            ok, status, detail = self.probe.try_once(self.timeout)
            if self.stopped.is_set():
                return
            if not self.health:
                if status != last_status:
                    last_status = status
                    self.events.put(("check", {"task_id": self.task_id,
                                               "check_status": status}))
            elif ok:
                failures = 0
                if healthy is not True:
                    healthy = True
                    self.events.put(("health", {"task_id": self.task_id, "healthy": True,
                                                "kill": False, "message": detail}))
            elif healthy is None and time.monotonic() - started < self.grace:
                pass  # still starting: failures before the first success count after grace
            else:
                failures += 1
                healthy = False
                kill = failures >= self.failures_to_kill
                self.events.put(("health", {"task_id": self.task_id, "healthy": False,
                                            "kill": kill, "message": detail}))
                if kill:
                    return
            self.stopped.wait(self.interval)


def start(task: dict[str, Json], events: queue.Queue[Json], run_command: RunCommand,
          host: str = "127.0.0.1") -> list[CheckThread]:
    """Start the task's health check and check, those it has."""
    task_id = str(task["task_id"]["value"])
    threads = []
    for key, health in (("health_check", True), ("check", False)):
        spec = task.get(key)
        if spec:
            thread = CheckThread(task_id, spec, health, events, run_command, host)
            thread.start()
            threads.append(thread)
    return threads
