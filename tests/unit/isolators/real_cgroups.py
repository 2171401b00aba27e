"""What the isolator tests share: a ``--cgroups_root`` of their own in this machine's real cgroup
v1 hierarchies, container configs, and processes started by the real launcher.

Without cgroups (not root, or not mounted read-write) a test skips, except in CI, where it
fails (the ``cgroups`` marker documents the need).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from agent_runtime.containerizer.containerizer import ContainerConfig
from agent_runtime.containerizer.launcher import PosixLauncher, Process
from agent_runtime.proto import mesos_pb2
from agent_runtime.resources import Resources
from tests.harness.cgroups import HIERARCHY, cgroup_root

__all__ = ["HIERARCHY", "cgroup_root"]


def container_config(container_id: str, resources: Resources, directory: Path,
                     network: str | None = None) -> ContainerConfig:
    """A command executor's container with ``resources`` (on a named network if given)."""
    info = mesos_pb2.ExecutorInfo()
    info.executor_id.value = container_id
    info.resources.extend(resources.to_proto())
    if network is not None:
        info.container.type = mesos_pb2.ContainerInfo.MESOS
        info.container.network_infos.add(name=network)
    return ContainerConfig(container_id, "agent", mesos_pb2.FrameworkInfo(), info, (),
                           True, str(directory), {})


async def launch_python(code: str, directory: Path, cgroup_procs: Sequence[str] = ()
                        ) -> Process:
    """``python -c code`` through the real launcher, joined to ``cgroup_procs`` before exec."""
    directory.mkdir(parents=True, exist_ok=True)
    return await PosixLauncher().launch(
        [sys.executable, "-c", code], {"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        str(directory), str(directory / "stdout"), str(directory / "stderr"),
        cgroup_procs=cgroup_procs)


async def output(process: Process, directory: Path, timeout: float = 10.0) -> str:
    """The process's stdout once it exited (its stderr in the assertion when it failed)."""
    status = await asyncio.wait_for(process.exited, timeout)
    assert status == 0, (directory / "stderr").read_text()
    return (directory / "stdout").read_text()


async def until(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)
