"""What the cgroups isolators share: one cgroup per container under ``--cgroups_root``, and
one per task of a task group nested in its container's (``<root>/<container>/task-<task id>``,
Mesos's nested containers: ``task_cgroups.py``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Collection

from agent_runtime.containerizer.cgroups import Cgroups, require_controller
from agent_runtime.containerizer.isolator import Isolator

TASK_PREFIX = "task-"


class CgroupIsolator(Isolator):
    controller = ""  # set by each subclass

    def __init__(self, cgroups: Cgroups, root: str) -> None:
        self.cgroups = cgroups
        self.root = root
        require_controller(cgroups, self.controller, root)

    def cgroup(self, container_id: str) -> str:
        return f"{self.root}/{container_id}"

    def procs_file(self, container_id: str) -> str:
        return self.cgroups.path(self.controller, f"{self.cgroup(container_id)}/cgroup.procs")

    def task_cgroup(self, container_id: str, task_id: str) -> str:
        # The prefix keeps a task id such as "tasks" or "cpu.shares" off the control files.
        return f"{self.cgroup(container_id)}/{TASK_PREFIX}{task_id}"

    async def recover(self, known: Collection[str]) -> None:
        for name in self.cgroups.children(self.controller, self.root):
            if name not in known:
                await self.cleanup(name)

    async def cleanup(self, container_id: str) -> None:
        await remove_cgroup(self.cgroups, self.controller, self.cgroup(container_id))


def hand_over(procs: str, owner: int | None) -> None:
    """Let the executor's user (not root) move its task into a nested cgroup: only its
    ``cgroup.procs`` file changes hands; the limits beside it stay the agent's to write."""
    if owner is not None and owner != 0:
        os.chown(procs, owner, -1)


async def remove_cgroup(cgroups: Cgroups, controller: str, cgroup: str) -> None:
    """Kill what is left and remove the cgroup. Usually it is empty already (the executor has
    exited) and this is one rmdir, done inline: a thread would cost more than it saves. With
    processes left, or a cgroup still busy letting go of one, it can take seconds, which must
    not stall the agent's event loop: that goes to a thread. Nested cgroups (a task group's
    tasks) go first: a cgroup with children cannot be removed."""
    for child in cgroups.children(controller, cgroup):
        await remove_cgroup(cgroups, controller, f"{cgroup}/{child}")
    if not cgroups.procs(controller, cgroup):
        try:
            os.rmdir(cgroups.path(controller, cgroup))
            return
        except FileNotFoundError:
            return
        except OSError:
            pass

    def kill_and_remove() -> None:
        cgroups.kill_all(controller, cgroup)
        cgroups.remove(controller, cgroup)

    await asyncio.to_thread(kill_and_remove)
