"""``--isolation``: names to isolator modules, resolved once at agent start.

The modules live in ``isolators/`` (installed as ``agent_runtime.isolators``) and are loaded by
name: mypy checks that folder as its own package and cannot follow the editable install's
mapping, so the table below is the one place the two meet. Each module has
``create(config, cgroups) -> Isolator``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence

from agent_runtime.agent.config import AgentConfig
from agent_runtime.containerizer.cgroups import Cgroups, select_backend
from agent_runtime.containerizer.isolator import Isolator
from agent_runtime.errors import FlagError

# Names that need no isolator: usage comes from the process tree (posix/cpu, posix/mem), and the
# host's filesystem is shared (filesystem/posix, the default).
POSIX = ("posix/cpu", "posix/mem", "filesystem/posix")
# Mesos's deprecated spellings.
ALIASES = {"process": ("posix/cpu", "posix/mem"), "cgroups": ("cgroups/cpu", "cgroups/mem")}
MODULES = {
    "filesystem/linux": "agent_runtime.isolators.filesystem_linux",
    "namespaces/pid": "agent_runtime.isolators.namespaces_pid",
    "docker/runtime": "agent_runtime.isolators.docker_runtime",
    "cgroups/cpu": "agent_runtime.isolators.cgroups_cpu",
    "cgroups/mem": "agent_runtime.isolators.cgroups_mem",
    "cgroups/pids": "agent_runtime.isolators.cgroups_pids",
    "cgroups/devices": "agent_runtime.isolators.cgroups_devices",
    "network/ports": "agent_runtime.isolators.network_ports",
    "gpu/nvidia": "agent_runtime.isolators.gpu_nvidia",
    "linux/capabilities": "agent_runtime.isolators.linux_capabilities",
    "linux/nnp": "agent_runtime.isolators.linux_nnp",
    "linux/seccomp": "agent_runtime.isolators.linux_seccomp",
    "namespaces/ipc": "agent_runtime.isolators.namespaces_ipc",
    "namespaces/uts": "agent_runtime.isolators.namespaces_uts",
}

IsolatorFactory = Callable[[AgentConfig, Cgroups], Isolator]


def parse(isolation: str) -> list[str]:
    given = (name.strip() for name in isolation.split(",") if name.strip())
    names = list(dict.fromkeys(expanded for name in given
                               for expanded in ALIASES.get(name, (name,))))
    unknown = [name for name in names if name not in MODULES and name not in POSIX]
    if unknown:
        raise FlagError(f"--isolation: unknown or not yet supported {unknown}; "
                        f"supported: {', '.join((*POSIX, *MODULES))}")
    return names


def check(names: list[str], image_providers: Sequence[str]) -> None:
    """The combinations Mesos refuses at start-up, refused here too, with the flag named."""
    if "filesystem/linux" in names and "filesystem/posix" in names:
        raise FlagError("--isolation: only one filesystem isolator may be given, not both "
                        "filesystem/linux and filesystem/posix")
    if "namespaces/pid" in names and "filesystem/linux" not in names:
        raise FlagError("--isolation: namespaces/pid needs filesystem/linux")
    if "docker" in image_providers:
        missing = [name for name in ("filesystem/linux", "docker/runtime") if name not in names]
        if missing:
            raise FlagError(f"--image_providers=docker needs --isolation to include "
                            f"{' and '.join(missing)}")


def create_isolators(config: AgentConfig, image_providers: Sequence[str] = ()) -> list[Isolator]:
    """The isolators ``--isolation`` names, in its order; cgroups are checked here, once."""
    all_names = parse(config.isolation)
    check(all_names, image_providers)
    names = [name for name in all_names if name in MODULES]
    if not names:
        return []
    cgroups = select_backend(config.cgroups_hierarchy)
    isolators = []
    for name in names:
        factory: IsolatorFactory = importlib.import_module(MODULES[name]).create
        isolators.append(factory(config, cgroups))
    return isolators
