"""Sessions into the Mesos containerizer's containers: ``executors/nested.py`` run as a child of
the agent, aimed at the task's own process.

The task's process, not the executor's: the command executor stays on the host's filesystem
(its task alone enters an image's root) and may hold what the task does not. It is the
executor's oldest child; for an image task that child is the init of the task's pid namespace
(``executors/rootfs.py``) and the task is the init's child. Which cgroups the container has
and which seccomp filter confines it only the launch knew: :class:`SessionEntry` keeps them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from dataclasses import dataclass

import psutil

from agent_runtime.containerizer.sessions import ProcessSession, Session, SessionRequest
from agent_runtime.errors import Conflict
from agent_runtime.executors.nested import start_ticks

_SPEC = importlib.util.find_spec("agent_runtime.executors.nested")
assert _SPEC is not None and _SPEC.origin is not None
EXECUTORS_ROOT = os.path.dirname(os.path.dirname(_SPEC.origin))
NESTED_STUB = ("import sys; sys.path[0] = sys.argv[1]; from executors import nested; "
               "sys.exit(nested.main())")


@dataclass(frozen=True)
class SessionEntry:
    cgroup_procs: tuple[str, ...]
    seccomp: str | None  # the task's compiled filter, base64 (None: none)


def _pid_namespace_init(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("NSpid:"):
                    return line.split()[-1] == "1"
    except OSError:
        pass
    return False


def task_process(executor_pid: int) -> psutil.Process:
    """The task's process under its executor; Conflict while there is none."""
    try:
        children = sorted(psutil.Process(executor_pid).children(),
                          key=lambda child: child.create_time())
        if not children:
            raise Conflict("The task has no process to enter yet (or any more): try again "
                           "once it runs")
        task = children[0]
        if _pid_namespace_init(task.pid):
            inner = sorted(task.children(), key=lambda child: child.create_time())
            if not inner:
                raise Conflict("The task's container has no task process to enter yet")
            task = inner[0]
        return task
    except psutil.Error as exc:
        raise Conflict(f"The task's process is gone: {exc}") from exc


def launch(executor_pid: int, entry: SessionEntry, request: SessionRequest) -> Session:
    task = task_process(executor_pid)
    try:
        with open(f"/proc/{task.pid}/stat", "rb") as stat:
            start = start_ticks(stat.read())
    except OSError as exc:
        raise Conflict(f"The task's process is gone: {exc.strerror}") from exc
    session = {"pid": task.pid, "start": start, "cgroup_procs": list(entry.cgroup_procs),
               "argv": list(request.argv), "environment": dict(request.environment),
               "user": request.user, "seccomp": entry.seccomp, "tty": request.tty}
    argv = [sys.executable, "-S", "-c", NESTED_STUB, EXECUTORS_ROOT, json.dumps(session)]
    return ProcessSession.spawn(argv, {}, request.tty)


__all__ = ["SessionEntry", "launch", "task_process"]
