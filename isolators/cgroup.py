"""What the cgroups isolators share: one cgroup per container under ``--cgroups_root``."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Collection

from agent_runtime.containerizer.cgroups import Cgroups, require_controller
from agent_runtime.containerizer.isolator import Isolator


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

    async def recover(self, known: Collection[str]) -> None:
        for name in self.cgroups.children(self.controller, self.root):
            if name not in known:
                await self.cleanup(name)

    async def cleanup(self, container_id: str) -> None:
        await remove_cgroup(self.cgroups, self.controller, self.cgroup(container_id))


async def remove_cgroup(cgroups: Cgroups, controller: str, cgroup: str) -> None:
    """Kill what is left and remove the cgroup. Usually it is empty already (the executor has
    exited) and this is one rmdir, done inline: a thread would cost more than it saves. With
    processes left, or a cgroup still busy letting go of one, it can take seconds, which must
    not stall the agent's event loop: that goes to a thread."""
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
