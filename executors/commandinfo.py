"""A task's CommandInfo (as JSON) made runnable, for every executor of ours and their checks:
its argv, its environment, and the variables that are the agent's word to the executor and
never reach a task (standard library only, like every module here)."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Json = Any

# Set by the agent for a task with an image: JSON for rootfs.py (see there).
TASK_LAUNCH_INFO = "MESOS_TASK_LAUNCH_INFO"
EXECUTOR_TOKEN = "MESOS_EXECUTOR_AUTHENTICATION_TOKEN"
ROOTFS_LAUNCH = "MESOS_ROOTFS_LAUNCH"  # what rootfs.py reads (it drops the variable)
# The agent's word to the executor: a task's own variable of such a name is dropped, never
# obeyed, and the executor's identity (its token) stays with the executor.
AGENT_ONLY = (TASK_LAUNCH_INFO, ROOTFS_LAUNCH, EXECUTOR_TOKEN)


def command_argv(command: dict[str, Json]) -> tuple[list[str], str | None]:
    """``(argv, executable)`` for a CommandInfo: ``sh -c value`` or ``value`` with ``arguments``."""
    value = str(command.get("value", ""))
    if command.get("shell", True):
        return ["/bin/sh", "-c", value], None
    arguments = [str(a) for a in command.get("arguments", [])]
    return (arguments or [value]), value


def command_variables(command: dict[str, Json]) -> dict[str, str]:
    """The CommandInfo's own environment (its VALUE variables)."""
    return {str(v["name"]): str(v.get("value", ""))
            for v in command.get("environment", {}).get("variables", [])
            if v.get("type", "VALUE") == "VALUE"}


def task_environment(base: dict[str, str], command: dict[str, Json]) -> dict[str, str]:
    """What a task runs with: ``base`` (the executor's environment) and its command's
    variables, less the agent's word (``AGENT_ONLY``)."""
    env = {**base, **command_variables(command)}
    for name in AGENT_ONLY:
        env.pop(name, None)
    return env
