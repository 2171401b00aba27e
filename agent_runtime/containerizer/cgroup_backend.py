"""The one place that picks a cgroup backend (STYLE rule 6): v1 or v2, from the hierarchy.

Apart from both backends so that neither imports the other's chooser (cgroups_v2 builds on
CgroupsV1).
"""

from __future__ import annotations

import os

from agent_runtime.containerizer.cgroups import Cgroups, CgroupsV1
from agent_runtime.containerizer.cgroups_v2 import CgroupsV2
from agent_runtime.errors import FlagError


def select_backend(hierarchy: str) -> Cgroups:
    """The one place that picks a cgroup version: only a unified hierarchy's root has
    ``cgroup.controllers``."""
    if not os.path.isdir(hierarchy):
        raise FlagError(f"--cgroups_hierarchy={hierarchy}: no such directory")
    if os.path.exists(os.path.join(hierarchy, "cgroup.controllers")):
        return CgroupsV2(hierarchy)
    return CgroupsV1(hierarchy)
