"""The default executor: runs task groups (LAUNCH_GROUP), many tasks in one executor.

The agent starts it for a DEFAULT ExecutorInfo that brings no command (a LAUNCH_GROUP's), with
``python -S`` and the standard library only, like ``command.py``; ``session.py`` drives it.

Each task is a child process of this executor, not a nested container launched back through the
agent's operator API (Mesos's way). Why: the tasks then share the executor's network and
cgroups exactly as Mesos's nested containers do by default (``share_cgroups``: the group is
limited as a sum by the executor's container, which the master charged with every task's
resources), every launch saves a round trip through the agent and a second containerizer
launch, and the executor needs no operator credentials. What that costs: a task gets no image
of its own (the master refuses one, naming it) and no cgroup of its own.

Every task runs in a session of its own (a kill reaches all it started) in its own sandbox,
``<executor sandbox>/tasks/<task id>`` (``MESOS_SANDBOX``), with ``stdout``/``stderr`` there; a
``SANDBOX_PATH`` volume of type PARENT links a path of the executor's sandbox into it, the
shared volume of the group's tasks.

Group semantics, as Mesos's: when a task fails or is killed, every other task of its group is
killed (a task that finishes with status 0 leaves the others alone); a KILL of one task kills
its group. The executor leaves once every task it was given has ended and its terminal update
is acknowledged.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time

from .checks import local_command
from .command import DEFAULT_GRACE, EXECUTOR_TOKEN, command_argv, describe_exit
from .session import ExecutorSession, policy_grace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Json = Any


def _relative(path: str) -> str | None:
    """``path`` if it stays below the directory it is taken in (no absolute path, no ``..``)."""
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if not parts or path.startswith("/") or ".." in parts:
        return None
    return "/".join(parts)


class TaskGroups:
    """The tasks of every group this executor was given (the session's ``TaskRunner``)."""

    kind = "default"
    groups = True

    def __init__(self, session: ExecutorSession) -> None:
        self.session = session
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.group_of: dict[str, tuple[str, ...]] = {}
        self.killing: set[str] = set()
        self.kill_deadlines: dict[str, float] = {}
        self.ended: set[str] = set()

    # Launch --------------------------------------------------------------------------------
    def launch(self, task: dict[str, Json]) -> None:
        raise AssertionError("the session sends no single task to the default executor")

    def launch_group(self, tasks: list[dict[str, Json]]) -> None:
        ids = tuple(str(task["task_id"]["value"]) for task in tasks)
        for task_id in ids:
            self.group_of[task_id] = ids
        for task in tasks:
            self._spawn(task)

    def _spawn(self, task: dict[str, Json]) -> None:
        session = self.session
        task_id = str(task["task_id"]["value"])
        try:
            sandbox = self._sandbox(task_id, task)
        except (OSError, ValueError) as exc:
            session.update("TASK_FAILED", f"Failed to prepare the sandbox: {exc}",
                           "REASON_CONTAINER_LAUNCH_FAILED", task_id=task_id)
            self._ended(task_id, failed=True)
            return
        command = task.get("command", {})
        argv, executable = command_argv(command)
        env = dict(session.env)
        for variable in command.get("environment", {}).get("variables", []):
            if variable.get("type", "VALUE") == "VALUE":
                env[str(variable["name"])] = str(variable.get("value", ""))
        env.pop(EXECUTOR_TOKEN, None)  # the executor's identity stays with the executor
        env["MESOS_SANDBOX"] = sandbox
        env["MESOS_TASK_ID"] = task_id
        try:
            with open(os.path.join(sandbox, "stdout"), "ab") as out, \
                    open(os.path.join(sandbox, "stderr"), "ab") as err:
                process = subprocess.Popen(
                    argv, executable=executable, env=env, cwd=sandbox,
                    stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True,
                    close_fds=True)
        except OSError as exc:
            session.update("TASK_STARTING", task_id=task_id)
            session.update("TASK_FAILED", f"Failed to launch {' '.join(argv)}: {exc}",
                           task_id=task_id)
            self._ended(task_id, failed=True)
            return
        self.processes[task_id] = process
        threading.Thread(target=self._wait, args=(task_id, process), daemon=True).start()
        session.update("TASK_STARTING", task_id=task_id)
        session.update("TASK_RUNNING", task_id=task_id)
        session.start_checks(task, local_command(env, sandbox))

    def _sandbox(self, task_id: str, task: dict[str, Json]) -> str:
        """The task's own sandbox, with the executor's shared paths linked in."""
        root = self.session.sandbox
        sandbox = os.path.join(root, "tasks", task_id)
        os.makedirs(sandbox, exist_ok=True)
        for volume in task.get("container", {}).get("volumes", []):
            source = volume.get("source", {})
            if source.get("type") != "SANDBOX_PATH":
                continue
            shared = source.get("sandbox_path", {})
            if shared.get("type", "PARENT") != "PARENT":
                continue
            target = _relative(str(shared.get("path", "")))
            link = _relative(str(volume.get("container_path", "")))
            if target is None or link is None:
                raise ValueError("a SANDBOX_PATH volume needs relative paths that stay in "
                                 "their sandbox")
            os.makedirs(os.path.join(root, target), exist_ok=True)
            where = os.path.join(sandbox, link)
            os.makedirs(os.path.dirname(where), exist_ok=True)
            if not os.path.lexists(where):
                os.symlink(os.path.join(root, target), where)
        return sandbox

    def _wait(self, task_id: str, process: subprocess.Popen[bytes]) -> None:
        self.session.events.put(("task_exited", (task_id, process.wait())))

    # Exits and group semantics ------------------------------------------------------------
    def event(self, kind: str, payload: Json) -> None:
        if kind != "task_exited":
            return
        task_id, status = payload
        self.kill_deadlines.pop(task_id, None)
        detail = describe_exit(status)
        if task_id in self.killing:
            state = "TASK_KILLED"
        else:
            state = "TASK_FINISHED" if status == 0 else "TASK_FAILED"
        self.session.update(state, detail, task_id=task_id)
        self._ended(task_id, failed=state != "TASK_FINISHED")

    def _ended(self, task_id: str, failed: bool) -> None:
        self.ended.add(task_id)
        if not failed:
            return
        for other in self.group_of.get(task_id, ()):
            if other not in self.ended and other not in self.killing:
                if other in self.processes:
                    self._terminate(other, None)
                elif other in self.session.tasks and other not in self.session.terminals:
                    self.session.update("TASK_KILLED", f"Task {task_id} of its group ended",
                                        task_id=other)
                    self.ended.add(other)

    # Kill ----------------------------------------------------------------------------------
    def launched(self, task_id: str) -> bool:
        return task_id in self.processes

    def kill(self, task_id: str, grace: float | None) -> None:
        """A KILL of one task of a group kills the group, as Mesos."""
        for member in self.group_of.get(task_id, (task_id,)):
            if member in self.processes and member not in self.ended:
                self._terminate(member, grace)

    def _terminate(self, task_id: str, grace: float | None) -> None:
        if grace is None:
            grace = policy_grace(self.session.tasks.get(task_id, {}).get("kill_policy"))
        deadline = time.monotonic() + (DEFAULT_GRACE if grace is None else grace)
        if task_id in self.killing:
            # A second kill may only shorten the grace period, as in Mesos.
            self.kill_deadlines[task_id] = min(self.kill_deadlines.get(task_id, deadline),
                                               deadline)
            return
        self.killing.add(task_id)
        self.session.stop_checks(task_id)
        self.kill_deadlines[task_id] = deadline
        self._signal(task_id, signal.SIGTERM)

    def _signal(self, task_id: str, signum: int) -> None:
        process = self.processes.get(task_id)
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signum)

    def exited(self, status: int) -> tuple[str, str, str | None]:
        raise AssertionError("the default executor reports each task's exit itself")

    def deadline(self) -> float | None:
        return min(self.kill_deadlines.values(), default=None)

    def expired(self) -> None:
        now = time.monotonic()
        for task_id, deadline in list(self.kill_deadlines.items()):
            if deadline <= now:
                del self.kill_deadlines[task_id]
                self._signal(task_id, signal.SIGKILL)

    def resubscribed(self) -> None:
        return None

    def disconnected(self) -> None:
        # The agent is gone; without checkpointing there is nobody to report to.
        for task_id in self.processes:
            self._signal(task_id, signal.SIGKILL)


def main() -> int:
    missing = [name for name in ("MESOS_AGENT_ENDPOINT", "MESOS_FRAMEWORK_ID",
                                 "MESOS_EXECUTOR_ID") if name not in os.environ]
    if missing:
        print(f"default executor: missing environment {', '.join(missing)}", file=sys.stderr)
        return 2
    session = ExecutorSession(dict(os.environ))
    return session.run(TaskGroups(session))
