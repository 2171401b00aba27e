"""The command executor: runs one command task and reports its life to the agent.

It speaks the Mesos v1 executor HTTP API (``POST /api/v1/executor``) in JSON, as any third-party
executor would, and its executor id is the task id, as in Mesos. The agent starts it with
``python -S`` so it costs no site-packages scan at start-up: this module uses the standard
library only.

Life of the task::

    SUBSCRIBE --LAUNCH--> TASK_STARTING -> spawn -> TASK_RUNNING --exit 0--> TASK_FINISHED
                                                               \\--exit n--> TASK_FAILED
                                      KILL: SIGTERM, grace, SIGKILL ------> TASK_KILLED

The task runs in its own session so a kill reaches everything it started. What is the same for
every executor of ours (subscribing, updates and their acknowledgements, re-subscribing, the
main loop) is ``session.py``'s; the HTTP client and the RecordIO reader are
``agent_client.py``'s. This module is the :class:`CommandTask` runner the session drives.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time

from .checks import container_command, init_of, local_command
from .commandinfo import ROOTFS_LAUNCH, TASK_LAUNCH_INFO, command_argv, task_environment
from .session import ExecutorSession, from_environment, policy_grace

# Every module imported here is paid for in every task's launch latency: typing stays out of the
# run-time path (annotations are never evaluated) and so do uuid, base64 and http.client.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Json = Any

ROOTFS_ARGV = [sys.executable, "-S", "-c",
               "import sys; sys.path[0] = sys.argv[1]; from executors import rootfs; "
               "sys.exit(rootfs.main())",
               os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
# The task of an image container gets a pid namespace of its own (util-linux, as the launcher
# uses: a thread-using executor cannot unshare one for its children itself).
TASK_PID_NAMESPACE = ["unshare", "--pid", "--fork", "--kill-child", "--"]
DEFAULT_GRACE = 3.0  # seconds between SIGTERM and SIGKILL when no kill policy says otherwise
REAP_INTERVAL = 1.0  # seconds between looks for ended orphans (pid 1 only)


def describe_exit(status: int) -> str:
    if status < 0:
        # strsignal's words ("Terminated", "Killed"), as Mesos writes them.
        name = signal.strsignal(-status) or str(-status)
        return f"Command terminated with signal {name}"
    return f"Command exited with status {status}"


class CommandTask:
    """The task as a process of this executor's (the session's ``TaskRunner``)."""

    kind = "command"
    groups = False

    def __init__(self, session: ExecutorSession) -> None:
        self.session = session
        self.process: subprocess.Popen[bytes] | None = None
        self.status_pipe: int | None = None
        self.spawning = threading.Lock()
        self.killing = False
        self.kill_deadline: float | None = None

    def launch(self, task: dict[str, Json]) -> None:
        session = self.session
        command = task.get("command", {})
        argv, executable = command_argv(command)
        env = task_environment(session.env, command)
        launch_info = session.env.get(TASK_LAUNCH_INFO)
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
                    argv, executable=executable, env=env, cwd=session.sandbox,
                    stdin=subprocess.DEVNULL, start_new_session=True, close_fds=True,
                    pass_fds=pass_fds,
                )
        except OSError as exc:
            for fd in pass_fds:
                os.close(fd)
            session.update("TASK_STARTING")
            session.update("TASK_FAILED", f"Failed to launch {' '.join(argv)}: {exc}")
            return
        for fd in pass_fds:
            os.close(fd)
        threading.Thread(target=self._wait_child, args=(self.process,), daemon=True).start()
        session.update("TASK_STARTING")
        session.update("TASK_RUNNING")
        process = self.process
        session.start_checks(task, local_command(env, session.sandbox) if launch_info is None
                             else container_command(ROOTFS_ARGV, env, launch,
                                                    lambda: init_of(process.pid)))

    def launch_group(self, tasks: list[dict[str, Json]]) -> None:
        raise AssertionError("the session sends no task group to a command executor")

    def reap_orphans(self) -> None:
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
        self.session.events.put(("exited", status))

    def launched(self, task_id: str) -> bool:
        return self.process is not None

    def kill(self, task_id: str, grace: float | None) -> None:
        if grace is None:
            assert self.session.task is not None
            grace = policy_grace(self.session.task.get("kill_policy"))
        deadline = time.monotonic() + (DEFAULT_GRACE if grace is None else grace)
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

    def exited(self, status: int) -> tuple[str, str, str | None]:
        detail = describe_exit(status)
        if self.killing:
            return "TASK_KILLED", detail, None
        return ("TASK_FINISHED" if status == 0 else "TASK_FAILED"), detail, None

    def event(self, kind: str, payload: Json) -> None:
        return None  # no entries of its own

    def deadline(self) -> float | None:
        return self.kill_deadline

    def expired(self) -> None:
        self.kill_deadline = None
        if self.process is not None and self.process.poll() is None:
            self._signal(signal.SIGKILL)

    def resubscribed(self) -> None:
        return None

    def disconnected(self) -> None:
        # The agent is gone; without checkpointing there is nobody to report to.
        if self.process is not None and self.process.poll() is None:
            self._signal(signal.SIGKILL)


def main() -> int:
    session = from_environment("command")
    if session is None:
        return 2
    runner = CommandTask(session)
    if os.getpid() == 1:
        threading.Thread(target=runner.reap_orphans, daemon=True).start()
    return session.run(runner)
