"""The command executor: runs one command task and reports its life to the agent.

It speaks the Mesos v1 executor HTTP API (``POST /api/v1/executor``) in JSON, as any third-party
executor would, and its executor id is the task id, as in Mesos. The agent starts it with
``python -S`` so it costs no site-packages scan at start-up: this module uses the standard
library only.

Life of the task::

    SUBSCRIBE --LAUNCH--> TASK_STARTING -> spawn -> TASK_RUNNING --exit 0--> TASK_FINISHED
                                                               \\--exit n--> TASK_FAILED
                                      KILL: SIGTERM, grace, SIGKILL ------> TASK_KILLED

The task runs in its own session so a kill reaches everything it started. The executor leaves
once its terminal update is acknowledged (or after ``ACK_WAIT`` seconds: the agent keeps
retrying the update on its own), or when the agent asks it to shut down.
"""

from __future__ import annotations

import binascii
import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

# Every module imported here is paid for in every task's launch latency: typing stays out of the
# run-time path (annotations are never evaluated) and so do uuid, base64 and http.client.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    Json = Any

# Set by the agent for a task with an image: JSON for rootfs.py (see there).
TASK_LAUNCH_INFO = "MESOS_TASK_LAUNCH_INFO"
ROOTFS_LAUNCH = "MESOS_ROOTFS_LAUNCH"  # what rootfs.py reads (it drops the variable)
ROOTFS_ARGV = [sys.executable, "-S", "-c",
               "import sys; sys.path[0] = sys.argv[1]; from executors import rootfs; "
               "sys.exit(rootfs.main())",
               os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
# The task of an image container gets a pid namespace of its own (util-linux, as the launcher
# uses: a thread-using executor cannot unshare one for its children itself).
TASK_PID_NAMESPACE = ["unshare", "--pid", "--fork", "--kill-child", "--"]
DEFAULT_GRACE = 3.0  # seconds between SIGTERM and SIGKILL when no kill policy says otherwise
ACK_WAIT = 2.0
REAP_INTERVAL = 1.0  # seconds between looks for ended orphans (pid 1 only)
NANOS = 1_000_000_000


def parse_duration(text: str, default: float) -> float:
    """Mesos durations as the agent writes them (``5secs``, ``100ms``, ``2mins``)."""
    units = (("ns", 1e-9), ("us", 1e-6), ("ms", 1e-3), ("secs", 1.0), ("mins", 60.0),
             ("hrs", 3600.0), ("days", 86400.0), ("weeks", 604800.0))
    text = text.strip()
    for suffix, scale in units:
        if text.endswith(suffix):
            try:
                return float(text[: -len(suffix)]) * scale
            except ValueError:
                return default
    return default


def command_argv(command: dict[str, Json]) -> tuple[list[str], str | None]:
    """``(argv, executable)`` for a CommandInfo: ``sh -c value`` or ``value`` with ``arguments``."""
    value = str(command.get("value", ""))
    if command.get("shell", True):
        return ["/bin/sh", "-c", value], None
    arguments = [str(a) for a in command.get("arguments", [])]
    return (arguments or [value]), value


def describe_exit(status: int) -> str:
    if status < 0:
        # strsignal's words ("Terminated", "Killed"), as Mesos writes them.
        name = signal.strsignal(-status) or str(-status)
        return f"Command terminated with signal {name}"
    return f"Command exited with status {status}"


class HttpConnection:
    """A minimal HTTP/1.1 client for loopback calls to the agent (and, over a unix socket, to
    the Docker Engine for the docker executor).

    ``http.client`` would do, but importing it (with ``email`` and ``ssl``) costs more start-up
    time than the rest of this executor together, and that time is every task's launch latency.
    The answers we read have two shapes only: a sized body, or a chunked stream.
    """

    def __init__(self, endpoint: str, timeout: float | None, unix_socket: str | None = None
                 ) -> None:
        if unix_socket is not None:
            self.host = "docker"
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(unix_socket)
        else:
            host, _, port = endpoint.rpartition(":")
            self.host = host
            self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the agent closed the connection")
        self.buffer += data

    def _line(self) -> bytes:
        while True:
            end = self.buffer.find(b"\r\n")
            if end >= 0:
                line, self.buffer = self.buffer[:end], self.buffer[end + 2:]
                return line
            self._fill()

    def _exact(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def request(self, body: bytes, accept: str | None = None) -> tuple[int, dict[str, str]]:
        """Send a POST to the executor API; returns the status code and the headers."""
        return self.send("POST", "/api/v1/executor", body, accept)

    def send(self, method: str, path: str, body: bytes, accept: str | None = None
             ) -> tuple[int, dict[str, str]]:
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n")
        if accept:
            head += f"Accept: {accept}\r\n"
        self.sock.sendall(head.encode() + b"\r\n" + body)
        status = int(self._line().split()[1])
        headers: dict[str, str] = {}
        while True:
            line = self._line()
            if not line:
                return status, headers
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()

    def body(self, headers: dict[str, str]) -> bytes:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            return b"".join(self.chunks())
        return self._exact(int(headers.get("content-length", "0")))

    def chunks(self) -> Iterator[bytes]:
        while True:
            size = int(self._line().split(b";")[0], 16)
            if size == 0:
                self._line()
                return
            yield self._exact(size)
            self._line()


class AgentConnection:
    """Calls to the agent over one keep-alive connection (the subscription has its own)."""

    def __init__(self, endpoint: str, framework_id: str, executor_id: str) -> None:
        self.endpoint = endpoint
        self.framework_id = framework_id
        self.executor_id = executor_id
        self._conn: HttpConnection | None = None

    def body(self, call_type: str, **fields: Json) -> bytes:
        call = {"type": call_type, "framework_id": {"value": self.framework_id},
                "executor_id": {"value": self.executor_id}, **fields}
        return json.dumps(call).encode()

    def post(self, call_type: str, **fields: Json) -> None:
        body = self.body(call_type, **fields)
        for attempt in range(2):  # a keep-alive connection the agent closed is retried once
            try:
                if self._conn is None:
                    self._conn = HttpConnection(self.endpoint, timeout=30)
                status, headers = self._conn.request(body)
                text = self._conn.body(headers)
            except (OSError, ValueError, IndexError):
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                if attempt:
                    raise
                continue
            if headers.get("connection", "").lower() == "close":
                self._conn.close()
                self._conn = None
            if status != 202:
                raise RuntimeError(f"{call_type} answered {status}: {text!r}")
            return

    def subscribe(self, unacknowledged: list[Json],
                  tasks: list[Json] | None = None) -> HttpConnection:
        """SUBSCRIBE; after a reconnection it carries what the agent may not have got."""
        conn = HttpConnection(self.endpoint, timeout=None)
        subscribe: dict[str, Json] = {
            "unacknowledged_updates": [{"status": status} for status in unacknowledged]}
        if tasks:
            subscribe["unacknowledged_tasks"] = tasks
        status, headers = conn.request(self.body("SUBSCRIBE", subscribe=subscribe),
                                       accept="application/json")
        if status != 200:
            raise RuntimeError(f"SUBSCRIBE answered {status}: {conn.body(headers)!r}")
        return conn


def read_events(stream: HttpConnection, events: queue.Queue[tuple[str, Json]]) -> None:
    """Decode RecordIO (``<length>\\n<json>``) from the subscription into ``events``."""
    buffer = b""
    try:
        for chunk in stream.chunks():
            buffer += chunk
            while True:
                newline = buffer.find(b"\n")
                if newline < 0:
                    break
                length = int(buffer[:newline])
                if len(buffer) < newline + 1 + length:
                    break
                record = buffer[newline + 1: newline + 1 + length]
                buffer = buffer[newline + 1 + length:]
                events.put(("event", json.loads(record)))
    except (OSError, ValueError, IndexError):
        pass
    events.put(("disconnected", None))


class CommandExecutor:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.agent = AgentConnection(env["MESOS_AGENT_ENDPOINT"], env["MESOS_FRAMEWORK_ID"],
                                     env["MESOS_EXECUTOR_ID"])
        self.sandbox = env.get("MESOS_SANDBOX") or os.getcwd()
        self.shutdown_grace = parse_duration(
            env.get("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", ""), 5.0)
        self.events: queue.Queue[Json] = queue.Queue()
        self.task: dict[str, Json] | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.status_pipe: int | None = None
        self.spawning = threading.Lock()
        self.killing = False
        self.kill_deadline: float | None = None
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
        terminal = state in ("TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR")
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
    def on_launch(self, event: dict[str, Json]) -> None:
        task = event["launch"]["task"]
        if self.task is not None:
            # One task per command executor, as in Mesos.
            self.task, first = task, self.task
            self.update("TASK_ERROR", "Attempted to run multiple tasks using a command executor")
            self.task = first
            return
        self.task = task
        command = task.get("command", {})
        argv, executable = command_argv(command)
        env = dict(self.env)
        for variable in command.get("environment", {}).get("variables", []):
            if variable.get("type", "VALUE") == "VALUE":
                env[str(variable["name"])] = str(variable.get("value", ""))
        # The agent's word only: a task's own variable of that name is dropped, never obeyed.
        env.pop(TASK_LAUNCH_INFO, None)
        env.pop(ROOTFS_LAUNCH, None)
        launch_info = self.env.get(TASK_LAUNCH_INFO)
        pass_fds: tuple[int, ...] = ()
        if launch_info is not None:
            # An image: the agent worked out the command (docker/runtime) and the rootfs
            # (filesystem/linux); the helper enters the rootfs and execs it there. It does so
            # in a pid namespace of the task's own, where it stays as init: nothing outside
            # the container (this executor included) is in the task's /proc, so no
            # /proc/<pid>/root leads back to the host. Its init reports the task's exit
            # through a pipe (an init cannot die of a signal to pass one on).
            launch = json.loads(launch_info)
            self.status_pipe, status_w = os.pipe()
            pass_fds = (status_w,)
            launch.update(init=True, status_fd=status_w)
            # In the environment, which only its holders may read, not the command line that
            # /proc shows every process in the container.
            env[ROOTFS_LAUNCH] = json.dumps(launch)
            argv, executable = [*TASK_PID_NAMESPACE, *ROOTFS_ARGV], None
        # Spawned before TASK_STARTING is sent, not after: the update's round trip to the
        # agent is then not on the way to TASK_RUNNING. The order of the updates is the same.
        try:
            with self.spawning:
                self.process = subprocess.Popen(
                    argv, executable=executable, env=env, cwd=self.sandbox,
                    stdin=subprocess.DEVNULL, start_new_session=True, close_fds=True,
                    pass_fds=pass_fds,
                )
        except OSError as exc:
            for fd in pass_fds:
                os.close(fd)
            self.update("TASK_STARTING")
            self.update("TASK_FAILED", f"Failed to launch {' '.join(argv)}: {exc}")
            return
        for fd in pass_fds:
            os.close(fd)
        threading.Thread(target=self._wait_child, args=(self.process,), daemon=True).start()
        self.update("TASK_STARTING")
        self.update("TASK_RUNNING")

    def _reap_orphans(self) -> None:
        """As pid 1 of the container's pid namespace, the executor inherits every orphan in it;
        without this, each one that ends stays a zombie until the container does. The task
        itself is left to its own wait (``spawning`` keeps a task being spawned out of reach)."""
        children = f"/proc/self/task/{os.getpid()}/children"
        while True:
            time.sleep(REAP_INTERVAL)
            try:
                with open(children) as file:
                    pids = [int(pid) for pid in file.read().split()]
            except OSError:
                return
            with self.spawning:
                task = self.process.pid if self.process is not None else None
                for pid in pids:
                    if pid != task:
                        with contextlib.suppress(ChildProcessError):
                            os.waitpid(pid, os.WNOHANG)

    def _wait_child(self, process: subprocess.Popen[bytes]) -> None:
        status = process.wait()
        if self.status_pipe is not None:
            # The init's word on the task, when it lived to give it.
            with contextlib.suppress(OSError, ValueError):
                told = os.read(self.status_pipe, 32)
                if told:
                    status = int(told)
            os.close(self.status_pipe)
            self.status_pipe = None
        self.events.put(("exited", status))

    def launched(self) -> bool:
        """Whether the task's process exists (a kill before that needs no signal)."""
        return self.process is not None

    def on_kill(self, grace: float | None) -> None:
        if self.task is None or self.terminal_uuid is not None:
            return
        if self.process is None:
            self.update("TASK_KILLED", "Task killed before it started")
            return
        if grace is None:
            policy = self.task.get("kill_policy", {}).get("grace_period")
            grace = int(policy.get("nanoseconds", 0)) / NANOS if policy else DEFAULT_GRACE
        deadline = time.monotonic() + grace
        if self.killing:
            # A second KILL may only shorten the grace period, as in Mesos.
            self.kill_deadline = min(self.kill_deadline or deadline, deadline)
            return
        self.killing = True
        self.kill_deadline = deadline
        self._signal(signal.SIGTERM)

    def _signal(self, signum: int) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def on_exited(self, status: int) -> None:
        detail = describe_exit(status)
        if self.killing:
            self.update("TASK_KILLED", detail)
        elif status == 0:
            self.update("TASK_FINISHED", detail)
        else:
            self.update("TASK_FAILED", detail)

    def handle(self, event: dict[str, Json]) -> bool:
        """Act on one event; False when the executor should stop."""
        kind = event.get("type")
        if kind == "LAUNCH":
            self.on_launch(event)
        elif kind == "KILL":
            policy = event.get("kill", {}).get("kill_policy", {}).get("grace_period")
            self.on_kill(int(policy.get("nanoseconds", 0)) / NANOS if policy else None)
        elif kind == "ACKNOWLEDGED":
            acked = event["acknowledged"]["uuid"]
            self.unacknowledged.pop(acked, None)
            self.acknowledged_any = True
            if acked == self.terminal_uuid:
                return False
        elif kind == "SHUTDOWN":
            self.on_kill(self.shutdown_grace)
            if not self.launched():
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

    def run(self) -> int:
        if os.getpid() == 1:
            threading.Thread(target=self._reap_orphans, daemon=True).start()
        self._subscribe()
        while True:
            timeout = self._next_timeout()
            try:
                kind, payload = self.events.get(timeout=timeout)
            except queue.Empty:
                if self._on_timeout():
                    return 0
                continue
            if kind == "event":
                if not self.handle(payload):
                    return 0
            elif kind == "exited":
                self.on_exited(payload)
            elif kind == "disconnected":
                if self._resubscribe():
                    continue
                self.on_disconnected()
                return 1
            else:
                self.on_other(kind, payload)

    def on_disconnected(self) -> None:
        # The agent is gone; without checkpointing there is nobody to report to.
        if self.process is not None and self.process.poll() is None:
            self._signal(signal.SIGKILL)

    def on_other(self, kind: str, payload: Json) -> None:
        """Queue entries of kinds a subclass adds."""

    def _next_timeout(self) -> float | None:
        now = time.monotonic()
        deadlines = [d for d in (self.kill_deadline,
                                 self.terminal_sent_at and self.terminal_sent_at + ACK_WAIT)
                     if d]
        return max(0.0, min(deadlines) - now) if deadlines else None

    def _on_timeout(self) -> bool:
        now = time.monotonic()
        if self.terminal_sent_at is not None and now >= self.terminal_sent_at + ACK_WAIT:
            return True
        if self.kill_deadline is not None and now >= self.kill_deadline:
            self.kill_deadline = None
            if self.process is not None and self.process.poll() is None:
                self._signal(signal.SIGKILL)
        return False


def main() -> int:
    missing = [name for name in ("MESOS_AGENT_ENDPOINT", "MESOS_FRAMEWORK_ID",
                                 "MESOS_EXECUTOR_ID") if name not in os.environ]
    if missing:
        print(f"command executor: missing environment {', '.join(missing)}", file=sys.stderr)
        return 2
    return CommandExecutor(dict(os.environ)).run()


if __name__ == "__main__":
    sys.exit(main())
