"""What the cgroups isolators share: one cgroup per container under ``--cgroups_root``."""

from __future__ import annotations

import asyncio
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
        cgroup = self.cgroup(container_id)
        # Blocking but short (a few writes and an rmdir); a thread would cost more than it saves.
        self.cgroups.kill_all(self.controller, cgroup)
        await asyncio.sleep(0)
        self.cgroups.remove(self.controller, cgroup)
