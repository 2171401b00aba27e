"""A ``--cgroups_root`` of a test's own in this machine's real cgroup v1 hierarchies.

Without cgroups (not root, or not mounted read-write) a test skips, except in CI, where it
fails (the ``cgroups`` marker documents the need). Afterwards whatever a failed test left in its
root is killed and removed.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence

from agent_runtime.containerizer.cgroups import CgroupsV1
from tests.harness.needs import missing

HIERARCHY = "/sys/fs/cgroup"
# What the agent's cgroups/cpu and cgroups/mem isolators use here (cpuacct is a hierarchy of
# its own on this machine).
CONTROLLERS = ("cpu", "cpuacct", "memory")


def _problem(controllers: Sequence[str]) -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    for controller in controllers:
        if not os.access(os.path.join(HIERARCHY, controller, "cgroup.procs"), os.W_OK):
            return f"no writable cgroup v1 {controller} hierarchy at {HIERARCHY}"
    return None


def cgroup_root(controllers: Sequence[str] = CONTROLLERS) -> Iterator[str]:
    """A fixture body: a fresh root name, cleaned up after the test."""
    problem = _problem(controllers)
    if problem is not None:
        missing(f"cgroups: {problem}")
    name = f"mesos-test-{uuid.uuid4().hex[:8]}"
    yield name
    backend = CgroupsV1(HIERARCHY)
    for controller in controllers:
        for container in backend.children(controller, name):
            # A task group's tasks have cgroups nested in their container's: those go first.
            for task in backend.children(controller, f"{name}/{container}"):
                backend.kill_all(controller, f"{name}/{container}/{task}")
                backend.remove(controller, f"{name}/{container}/{task}")
            backend.kill_all(controller, f"{name}/{container}")
            backend.remove(controller, f"{name}/{container}")
        backend.remove(controller, name)


def containers(root: str, controller: str = "memory") -> list[str]:
    """The container cgroups under ``root`` in one controller's hierarchy."""
    path = os.path.join(HIERARCHY, controller, root)
    if not os.path.isdir(path):
        return []
    return [entry.name for entry in os.scandir(path) if entry.is_dir()]
