"""The docker executor: reports the life of one task's Docker container to the agent.

One per task, executor id = task id, as Mesos's ``mesos-docker-executor``. The agent's Docker
containerizer creates and starts the container ``MESOS_CONTAINER_NAME`` while this executor
subscribes and reports TASK_STARTING (``agent_runtime/containerizer/docker.py`` says why). It
speaks the v1 executor API in JSON through the same session as the command executor
(``session.py``: it is the :class:`DockerTask` runner that session drives), and talks to the
Docker Engine itself over its unix socket (``MESOS_DOCKER_SOCKET``) with the session's small
HTTP client (``agent_client.py``): standard library only, started with ``python -S``, because
the Docker SDK's import alone would cost more than this whole executor's start-up.

Life of the task::

    LAUNCH (the agent is creating the container) -> TASK_STARTING
    engine `start` event (or inspect: already started) -> TASK_RUNNING
        engine `wait` returns n --> n == 0: TASK_FINISHED
                               \\-> n != 0: TASK_FAILED "Container exited with status n"
                               \\-> OOMKilled: TASK_FAILED, REASON_CONTAINER_LIMITATION_MEMORY
        KILL: `docker stop -t grace` -> TASK_KILLED
    agent restarted before the container started (checkpointing) -> TASK_FAILED

Nothing polls: one thread reads the engine's event stream for the start, one blocks on the
engine's ``wait``, one follows the container's logs into the sandbox's ``stdout``/``stderr``
(this process's own fds 1 and 2, which the agent opened on those files). The terminal update goes
out once the log stream has ended, so the sandbox holds all of the output when the scheduler
hears of the exit. The agent removes the container after this process exits.

With checkpointing (``MESOS_CHECKPOINT=1``) an agent restart changes nothing of the above: the
container runs on, the threads keep watching it, and updates wait for the re-subscription
(``ExecutorSession._resubscribe``). Only a launch the dead agent left half done is failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time

from .agent_client import HttpConnection
from .commandinfo import command_argv
from .session import ExecutorSession, from_environment, policy_grace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Json = Any

DEFAULT_SOCKET = "/var/run/docker.sock"
LOG_DRAIN = 5.0  # seconds the terminal update waits for the log stream to end
STDOUT, STDERR = 1, 2  # stream ids in the engine's multiplexed log format


class EngineError(RuntimeError):
    pass


class NoSuchContainer(EngineError):
    pass


class Engine:
    """The Docker Engine API calls this executor makes, one connection per call (they block)."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path

    def _open(self, timeout: float | None) -> HttpConnection:
        return HttpConnection("", timeout, unix_socket=self.socket_path)

    def call(self, method: str, path: str, timeout: float | None = 30.0,
             body: dict[str, Json] | None = None) -> tuple[int, bytes]:
        conn = self._open(timeout)
        try:
            status, headers = conn.send(method, path,
                                        b"" if body is None else json.dumps(body).encode())
            return status, conn.body(headers)
        finally:
            conn.close()

    def wait(self, name: str) -> int:
        """Block until the container exits; its exit code."""
        status, body = self.call("POST", f"/containers/{name}/wait", timeout=None)
        if status != 200:
            raise EngineError(f"wait for {name} answered {status}: {body[:200]!r}")
        return int(json.loads(body)["StatusCode"])

    def inspect(self, name: str) -> dict[str, Json]:
        status, body = self.call("GET", f"/containers/{name}/json")
        if status == 404:
            raise NoSuchContainer(f"no container {name}")
        if status != 200:
            raise EngineError(f"inspect of {name} answered {status}: {body[:200]!r}")
        inspected: dict[str, Json] = json.loads(body)
        return inspected

    def stop(self, name: str, grace: float) -> None:
        """SIGTERM (or the image's stop signal), SIGKILL after ``grace`` (whole seconds, up)."""
        seconds = max(0, int(-(-grace // 1)))
        status, body = self.call("POST", f"/containers/{name}/stop?t={seconds}",
                                 timeout=seconds + 30.0)
        if status not in (204, 304, 404):  # stopped, already stopped, already gone
            raise EngineError(f"stop of {name} answered {status}: {body[:200]!r}")

    def exec_status(self, name: str, argv: list[str], timeout: float) -> int | None:
        """Run ``argv`` in the container (``docker exec``); its exit status, None when it did
        not end within ``timeout`` or could not start (a health check's COMMAND)."""
        deadline = time.monotonic() + timeout
        status, body = self.call("POST", f"/containers/{name}/exec", body={"Cmd": argv})
        if status != 201:
            return None
        exec_id = str(json.loads(body)["Id"])
        status, _ = self.call("POST", f"/exec/{exec_id}/start", body={"Detach": True})
        if status != 200:
            return None
        while time.monotonic() < deadline:
            status, body = self.call("GET", f"/exec/{exec_id}/json")
            inspected = json.loads(body) if status == 200 else {}
            if status == 200 and not inspected.get("Running"):
                code = inspected.get("ExitCode")
                return None if code is None else int(code)
            time.sleep(0.1)
        return None

    def watch_start(self, name: str) -> None:
        """Return once the container has started (at once if it already has)."""
        filters = json.dumps({"container": [name], "type": ["container"], "event": ["start"]})
        conn = self._open(None)
        try:
            # Subscribe first, then look: a start between the two is in the stream.
            status, headers = conn.send("GET", f"/events?filters={_quote(filters)}", b"")
            if status != 200:
                raise EngineError(f"events answered {status}: {conn.body(headers)!r}")
            with contextlib.suppress(EngineError):  # not created yet: wait for the event
                started = self.inspect(name).get("State", {}).get("StartedAt", "")
                if started and not started.startswith("0001-"):
                    return
            for _ in conn.chunks():
                return  # the filter lets through this container's start only
            raise EngineError("the engine closed its event stream")
        finally:
            conn.close()

    def follow_logs(self, name: str, out_fd: int, err_fd: int) -> None:
        """Copy the container's output to the two fds until the container stops."""
        conn = self._open(None)
        try:
            status, headers = conn.send(
                "GET", f"/containers/{name}/logs?follow=1&stdout=1&stderr=1", b"")
            if status != 200:
                raise EngineError(f"logs of {name} answered {status}: {conn.body(headers)!r}")
            demux = LogDemux(out_fd, err_fd)
            if headers.get("transfer-encoding", "").lower() == "chunked":
                for chunk in conn.chunks():
                    demux.feed(chunk)
            else:
                demux.feed(conn.buffer)
                while data := conn.sock.recv(65536):
                    demux.feed(data)
        finally:
            conn.close()


def _quote(text: str) -> str:
    """Percent-encode for a query string (urllib.parse costs start-up time for one call)."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_.~") else f"%{ord(c):02X}"
                   for c in text)


class LogDemux:
    """Split the engine's multiplexed stream: 8-byte frame headers ``[stream, 0, 0, 0, size]``."""

    def __init__(self, out_fd: int, err_fd: int) -> None:
        self.fds = {STDOUT: out_fd, STDERR: err_fd}
        self.buffer = b""

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= 8:
            size = int.from_bytes(self.buffer[4:8], "big")
            if len(self.buffer) < 8 + size:
                return
            stream, payload = self.buffer[0], self.buffer[8:8 + size]
            self.buffer = self.buffer[8 + size:]
            fd = self.fds.get(stream, self.fds[STDOUT])
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view):]


class DockerTask:
    """The task as a Docker container the agent starts (the session's ``TaskRunner``)."""

    kind = "docker"
    groups = False

    def __init__(self, session: ExecutorSession) -> None:
        self.session = session
        self.container = session.env["MESOS_CONTAINER_NAME"]
        self.engine = Engine(session.env.get("MESOS_DOCKER_SOCKET") or DEFAULT_SOCKET)
        self.started = False
        self.killing = False
        self.kill_grace: float | None = None
        self.logs_done = threading.Event()

    def launched(self, task_id: str) -> bool:
        return self.started

    def launch_group(self, tasks: list[dict[str, Json]]) -> None:
        raise AssertionError("the session sends no task group to a docker executor")

    def launch(self, task: dict[str, Json]) -> None:
        # LAUNCH comes while the agent creates and starts the container: TASK_STARTING (and its
        # acknowledgement) overlap the engine's work, and TASK_RUNNING follows its start event.
        threading.Thread(target=self._watch_start, daemon=True).start()
        self.session.update("TASK_STARTING")

    def _watch_start(self) -> None:
        try:
            self.engine.watch_start(self.container)
        except (OSError, ValueError, EngineError) as exc:
            self.session.events.put(("wait_failed", str(exc)))
            return
        self.session.events.put(("started", None))

    def _on_started(self) -> None:
        if self.session.terminal_uuid is not None:
            return  # killed before it started; the agent removes the container
        self.started = True
        self.session.update("TASK_RUNNING")
        if self.session.task is not None:
            self.session.start_checks(self.session.task, self._exec, self._address())
        threading.Thread(target=self._follow_logs, daemon=True).start()
        threading.Thread(target=self._wait, daemon=True).start()

    def _exec(self, command: dict[str, Json], timeout: float) -> int | None:
        try:
            return self.engine.exec_status(self.container, command_argv(command)[0], timeout)
        except (OSError, ValueError, KeyError, EngineError):
            return None

    def _address(self) -> str:
        """Where an HTTP or TCP check finds the container: its own address on a bridge, the
        host's loopback with host networking."""
        try:
            settings = self.engine.inspect(self.container).get("NetworkSettings", {})
        except (OSError, ValueError, EngineError):
            return "127.0.0.1"
        return str(settings.get("IPAddress") or "127.0.0.1")

    def _follow_logs(self) -> None:
        try:
            self.engine.follow_logs(self.container, sys.stdout.fileno(), sys.stderr.fileno())
        except (OSError, ValueError, EngineError) as exc:
            print(f"docker executor: following logs of {self.container}: {exc}", file=sys.stderr)
        finally:
            self.logs_done.set()

    def _wait(self) -> None:
        try:
            code = self.engine.wait(self.container)
        except (OSError, ValueError, KeyError, EngineError) as exc:
            self.session.events.put(("wait_failed", str(exc)))
            return
        self.logs_done.wait(LOG_DRAIN)
        self.session.events.put(("exited", code))

    def exited(self, status: int) -> tuple[str, str, str | None]:
        message = f"Container exited with status {status}"
        oom = False
        try:
            oom = bool(self.engine.inspect(self.container).get("State", {}).get("OOMKilled"))
        except (OSError, ValueError, EngineError) as exc:
            print(f"docker executor: inspect of {self.container}: {exc}", file=sys.stderr)
        if self.killing:
            return "TASK_KILLED", message, None
        if oom:
            return ("TASK_FAILED", f"Memory limit exceeded: {message} (OOM killed)",
                    "REASON_CONTAINER_LIMITATION_MEMORY")
        return ("TASK_FINISHED" if status == 0 else "TASK_FAILED"), message, None

    def event(self, kind: str, payload: Json) -> None:
        if kind == "started":
            self._on_started()
        elif kind == "wait_failed" and self.session.terminal_uuid is None:
            self.session.update("TASK_FAILED",
                                f"Lost track of container {self.container}: {payload}")

    def kill(self, task_id: str, grace: float | None) -> None:
        if grace is None:
            assert self.session.task is not None
            grace = policy_grace(self.session.task.get("kill_policy"))
            if grace is None:
                grace = self.session.shutdown_grace
        # A second KILL may only shorten the grace: a new `stop` with a shorter timeout does.
        if self.killing and self.kill_grace is not None and grace >= self.kill_grace:
            return
        self.killing = True
        self.kill_grace = grace
        threading.Thread(target=self._stop, args=(grace,), daemon=True).start()

    def _stop(self, grace: float) -> None:
        try:
            self.engine.stop(self.container, grace)
        except (OSError, ValueError, EngineError) as exc:
            print(f"docker executor: stop of {self.container}: {exc}", file=sys.stderr)

    def deadline(self) -> float | None:
        return None  # the engine's `stop` keeps the grace period

    def expired(self) -> None:
        return None

    def resubscribed(self) -> None:
        if self.session.task is not None and not self.started \
                and self.session.terminal_uuid is None:
            self.check_abandoned()

    def check_abandoned(self) -> None:
        """Back with a restarted agent before the container ran: the agent that was creating
        and starting it died, and the new one does not go on with that launch."""
        try:
            state = self.engine.inspect(self.container).get("State", {})
        except NoSuchContainer:  # not created (the agent died during an image pull, say)
            state = {}
        except (OSError, ValueError, EngineError) as exc:
            print(f"docker executor: inspect of {self.container}: {exc}", file=sys.stderr)
            return
        started = state.get("StartedAt", "")
        if started and not started.startswith("0001-"):
            return  # it did start: the start event is on its way
        self.session.update("TASK_FAILED", f"Container {self.container} was not started: the "
                                           "agent restarted while launching it",
                            reason="REASON_CONTAINER_LAUNCH_FAILED")

    def disconnected(self) -> None:
        # The agent is gone and, without checkpointing, will not know us when it comes back:
        # stop the task rather than leave it unsupervised (the agent removes it at start-up).
        if self.started and self.session.terminal_uuid is None:
            self._stop(0.0)


def take_hand_over() -> bool:
    """A pre-started executor (``prewarm.py``) waits here for its task: one JSON line on stdin
    with its environment and sandbox. False when the agent let it go unused."""
    line = sys.stdin.buffer.readline()
    if not line:
        return False
    handed = json.loads(line)
    directory = handed["directory"]
    os.chdir(directory)
    for fd, name in ((1, "stdout"), (2, "stderr")):
        target = os.open(os.path.join(directory, name), os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                         0o644)
        os.dup2(target, fd)
        os.close(target)
    os.environ.clear()
    os.environ.update(handed["environment"])
    return True


def main() -> int:
    if os.environ.get("MESOS_EXECUTOR_PREWARMED") == "1" and not take_hand_over():
        return 0
    session = from_environment("docker", ("MESOS_CONTAINER_NAME",))
    if session is None:
        return 2
    return session.run(DockerTask(session))


if __name__ == "__main__":
    sys.exit(main())
