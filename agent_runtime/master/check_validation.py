"""A task's HealthCheck and CheckInfo, checked before launch as Mesos validates them: a check
the executor could not run (no type, a COMMAND without a command, an HTTP or TCP check without a
port, a negative or non-finite duration) fails the task with TASK_ERROR naming the field,
instead of an executor that guesses or crashes."""

from __future__ import annotations

import math

from agent_runtime.proto import mesos_pb2

HealthCheck = mesos_pb2.HealthCheck
CheckInfo = mesos_pb2.CheckInfo
HEALTH_DURATIONS = ("delay_seconds", "interval_seconds", "timeout_seconds",
                    "grace_period_seconds")
CHECK_DURATIONS = ("delay_seconds", "interval_seconds", "timeout_seconds")
MAX_SECONDS = 365 * 24 * 3600.0  # a year: anything longer is a mistake, not a plan


def _durations(message: HealthCheck | CheckInfo, names: tuple[str, ...], what: str
               ) -> str | None:
    for name in names:
        value = float(getattr(message, name))
        if not math.isfinite(value) or value < 0 or value > MAX_SECONDS:
            return f"{what}: expecting '{name}' to be a non-negative number of seconds"
    return None


def _port(port: int, what: str) -> str | None:
    if not 0 < port < 65536:
        return f"{what}: expecting a port between 1 and 65535"
    return None


def health_check_error(check: HealthCheck) -> str | None:
    what = "Invalid health check"
    if check.type == HealthCheck.COMMAND:
        if not check.HasField("command") or not (check.command.value
                                                 or check.command.arguments):
            return f"{what}: a COMMAND health check needs a command"
    elif check.type == HealthCheck.HTTP:
        if not check.HasField("http"):
            return f"{what}: an HTTP health check needs 'http'"
        if check.http.scheme not in ("", "http"):
            return f"{what}: 'http.scheme' must be 'http'"
        if check.http.path and not check.http.path.startswith("/"):
            return f"{what}: 'http.path' must start with '/'"
        error = _port(check.http.port, what)
        if error is not None:
            return error
    elif check.type == HealthCheck.TCP:
        if not check.HasField("tcp"):
            return f"{what}: a TCP health check needs 'tcp'"
        error = _port(check.tcp.port, what)
        if error is not None:
            return error
    else:
        return f"{what}: 'type' must be COMMAND, HTTP or TCP"
    return _durations(check, HEALTH_DURATIONS, what)


def check_error(check: CheckInfo) -> str | None:
    what = "Invalid check"
    if check.type == CheckInfo.COMMAND:
        command = check.command.command
        if not (command.value or command.arguments):
            return f"{what}: a COMMAND check needs 'command.command'"
    elif check.type == CheckInfo.HTTP:
        if check.http.path and not check.http.path.startswith("/"):
            return f"{what}: 'http.path' must start with '/'"
        error = _port(check.http.port, what)
        if error is not None:
            return error
    elif check.type == CheckInfo.TCP:
        error = _port(check.tcp.port, what)
        if error is not None:
            return error
    else:
        return f"{what}: 'type' must be COMMAND, HTTP or TCP"
    return _durations(check, CHECK_DURATIONS, what)


def checks_error(task: mesos_pb2.TaskInfo) -> str | None:
    """Why the task's health check or check cannot run (None: they can, or there are none)."""
    if task.HasField("health_check"):
        error = health_check_error(task.health_check)
        if error is not None:
            return error
    if task.HasField("check"):
        return check_error(task.check)
    return None


__all__ = ["check_error", "checks_error", "health_check_error"]
