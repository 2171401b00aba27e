"""The default executor: runs task groups (LAUNCH_GROUP), many tasks in one executor.

The agent starts it for a DEFAULT ExecutorInfo that brings no command (a LAUNCH_GROUP's), with
``python -S`` and the standard library only, like ``command.py``; ``session.py`` drives it.

Each task is a child process of this executor, not a nested container launched back through the
agent's operator API (Mesos's way): every launch saves a round trip through the agent, and the
executor needs no operator credentials. The agent still makes each task a nested container: it
prepares the task's own cgroups (nested in the executor's container's) and its image's rootfs
when it has one, and hands over what the task needs in the variable ``MESOS_TASK_LAUNCH_INFO``
of its command (``agent_runtime/containerizer/task_containers.py``): the task joins those
cgroups before its exec (as the launcher's executors do), and a task with an image enters its
rootfs through ``rootfs.py`` in a pid namespace of its own, as the command executor's does.
The tasks share the executor's network.

Every task runs in a session of its own (a kill reaches all it started) in its own sandbox,
``<executor sandbox>/tasks/<task id>`` (``MESOS_SANDBOX``), with ``stdout``/``stderr`` there; a
``SANDBOX_PATH`` volume of type PARENT links a path of the executor's sandbox into it, the
shared volume of the group's tasks.

Group semantics, as Mesos's: when a task fails or is killed, every other task of its group is
killed (a task that finishes with status 0 leaves the others alone); a KILL of one task kills
its group. Mesos's default executor gives a framework no way to say otherwise; ours reads the
label ``GROUP_FAILURE_LABEL`` of the task that ended (``KILL_GROUP``, the default, or
``CONTINUE``: its end, and a KILL of it, leave the rest of its group running). The master
refuses any other value. The executor leaves once every task it was given has ended and its
terminal update is acknowledged.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time

from .checks import container_command, init_of, local_command
from .command import DEFAULT_GRACE, ROOTFS_ARGV, TASK_PID_NAMESPACE, describe_exit
from .commandinfo import ROOTFS_LAUNCH, TASK_LAUNCH_INFO, command_argv, task_environment
from .session import ExecutorSession, from_environment, policy_grace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Json = Any


GROUP_FAILURE_LABEL = "agent_runtime.task_group.failure_policy"
KILL_GROUP, CONTINUE = "KILL_GROUP", "CONTINUE"
# Joins the cgroups the agent made for the task, then execs it (the launcher's way: no
# preexec_fn in a threaded process, and nothing the task forks can be left outside).
_JOIN_CGROUPS = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 127; shift; done; shift; exec "$@"'


def failure_policy(task: dict[str, Json]) -> str:
    for label in task.get("labels", {}).get("labels", []):
        if label.get("key") == GROUP_FAILURE_LABEL:
            return str(label.get("value", KILL_GROUP))
    return KILL_GROUP


def take_launch_info(task: dict[str, Json]) -> dict[str, Json]:
    """The agent's word on how to start the task, removed from the task (so it goes neither
    into the task's environment nor back to the agent when the executor re-subscribes)."""
    variables = task.get("command", {}).get("environment", {}).get("variables", [])
    found: dict[str, Json] = {}
    for variable in [v for v in variables if v.get("name") == TASK_LAUNCH_INFO]:
        variables.remove(variable)
        found = json.loads(str(variable.get("value", "{}")))
    return found


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
        launch = take_launch_info(task)
        command = task.get("command", {})
        argv, executable = command_argv(command)
        env = task_environment(session.env, command)
        env["MESOS_SANDBOX"] = sandbox
        env["MESOS_TASK_ID"] = task_id
        procs = [str(path) for path in launch.pop("cgroup_procs", [])]
        status_pipe: int | None = None
        pass_fds: tuple[int, ...] = ()
        if launch:
            # An image: rootfs.py enters it as the init of the task's own pid namespace and
            # reports the task's exit through a pipe (command.py does the same).
            status_pipe, status_w = os.pipe()
            pass_fds = (status_w,)
            launch.update(init=True, status_fd=status_w)
            env[ROOTFS_LAUNCH] = json.dumps(launch)
            argv, executable = [*TASK_PID_NAMESPACE, *ROOTFS_ARGV], None
        if procs:
            argv, executable = ["/bin/sh", "-c", _JOIN_CGROUPS, "sh", *procs, "--", *argv], None
        try:
            with open(os.path.join(sandbox, "stdout"), "ab") as out, \
                    open(os.path.join(sandbox, "stderr"), "ab") as err:
                process = subprocess.Popen(
                    argv, executable=executable, env=env, cwd=sandbox,
                    stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True,
                    close_fds=True, pass_fds=pass_fds)
        except OSError as exc:
            if status_pipe is not None:
                os.close(status_pipe)
            session.update("TASK_STARTING", task_id=task_id)
            session.update("TASK_FAILED", f"Failed to launch {' '.join(argv)}: {exc}",
                           task_id=task_id)
            self._ended(task_id, failed=True)
            return
        finally:
            for fd in pass_fds:
                os.close(fd)
        self.processes[task_id] = process
        threading.Thread(target=self._wait, args=(task_id, process, status_pipe),
                         daemon=True).start()
        session.update("TASK_STARTING", task_id=task_id)
        session.update("TASK_RUNNING", task_id=task_id)
        session.start_checks(task, local_command(env, sandbox) if not launch
                             else container_command(ROOTFS_ARGV, env, launch,
                                                    lambda: init_of(process.pid)))

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

    def _wait(self, task_id: str, process: subprocess.Popen[bytes],
              status_pipe: int | None) -> None:
        status = process.wait()
        if status_pipe is not None:
            # The init's word on the task, when it lived to give it.
            with contextlib.suppress(OSError, ValueError):
                told = os.read(status_pipe, 32)
                if told:
                    status = int(told)
            os.close(status_pipe)
        self.session.events.put(("task_exited", (task_id, status)))

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
        if not failed or self._policy(task_id) == CONTINUE:
            return
        for other in self.group_of.get(task_id, ()):
            if other not in self.ended and other not in self.killing:
                if other in self.processes:
                    self._terminate(other, None)
                elif other in self.session.tasks and other not in self.session.terminals:
                    self.session.update("TASK_KILLED", f"Task {task_id} of its group ended",
                                        task_id=other)
                    self.ended.add(other)

    def _policy(self, task_id: str) -> str:
        return failure_policy(self.session.tasks.get(task_id, {}))

    # Kill ----------------------------------------------------------------------------------
    def launched(self, task_id: str) -> bool:
        return task_id in self.processes

    def kill(self, task_id: str, grace: float | None) -> None:
        """A KILL of one task of a group kills the group, as Mesos (unless the task says
        ``CONTINUE``)."""
        group = (task_id,) if self._policy(task_id) == CONTINUE else \
            self.group_of.get(task_id, (task_id,))
        for member in group:
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
    session = from_environment("default")
    if session is None:
        return 2
    return session.run(TaskGroups(session))
