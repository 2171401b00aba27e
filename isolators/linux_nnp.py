"""``linux/nnp``: no_new_privs for every container, so no setuid binary or file capability
raises a task's privileges past what it was launched with (seccomp filters stay put too)."""

from __future__ import annotations

from agent_runtime.containerizer.containerizer import ContainerConfig
from agent_runtime.containerizer.isolator import Isolator, LaunchInfo

NO_NEW_PRIVS = LaunchInfo(security={"no_new_privs": True})


class NoNewPrivilegesIsolator(Isolator):
    async def prepare(self, container_id: str, config: ContainerConfig) -> LaunchInfo:
        return NO_NEW_PRIVS

