"""``--isolation``: names to isolator modules, resolved once at agent start.

The modules live in ``isolators/`` (installed as ``agent_runtime.isolators``) and are loaded by
name: mypy checks that folder as its own package and cannot follow the editable install's
mapping, so the table below is the one place the two meet. Each module has
``create(config, cgroups) -> Isolator``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from agent_runtime.agent.config import AgentConfig
from agent_runtime.containerizer.cgroups import Cgroups, select_backend
from agent_runtime.containerizer.isolator import Isolator
from agent_runtime.errors import FlagError

# Usage-only names that need no isolator (the posix launcher already runs the process).
POSIX = ("posix/cpu", "posix/mem")
MODULES = {
    "cgroups/cpu": "agent_runtime.isolators.cgroups_cpu",
    "cgroups/mem": "agent_runtime.isolators.cgroups_mem",
}

IsolatorFactory = Callable[[AgentConfig, Cgroups], Isolator]


def parse(isolation: str) -> list[str]:
    names = list(dict.fromkeys(name.strip() for name in isolation.split(",") if name.strip()))
    unknown = [name for name in names if name not in MODULES and name not in POSIX]
    if unknown:
        raise FlagError(f"--isolation: unknown or not yet supported {unknown}; "
                        f"supported: {', '.join((*POSIX, *MODULES))}")
    return names


def create_isolators(config: AgentConfig) -> list[Isolator]:
    """The isolators ``--isolation`` names, in its order; cgroups are checked here, once."""
    names = [name for name in parse(config.isolation) if name in MODULES]
    if not names:
        return []
    cgroups = select_backend(config.cgroups_hierarchy)
    isolators = []
    for name in names:
        factory: IsolatorFactory = importlib.import_module(MODULES[name]).create
        isolators.append(factory(config, cgroups))
    return isolators
