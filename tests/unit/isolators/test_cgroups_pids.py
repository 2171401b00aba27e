"""``cgroups/pids`` against this machine's real pids hierarchy: accounting, the optional
``pids`` resource as ``pids.max``, usage, cleanup and recovery."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_runtime.containerizer.cgroups import CgroupsV1
from agent_runtime.containerizer.isolation import Host
from agent_runtime.isolators.cgroups_pids import PidsIsolator, create, pids_max
from agent_runtime.resources import Resources
from tests.unit.isolators.real_cgroups import (
    HIERARCHY,
    cgroup_root,
    container_config,
    launch_python,
    output,
    until,
)

# Forks until the kernel refuses (pids.max) or five children run; prints how many it got.
FORK_FIVE = """
import os, time
children = 0
for _ in range(5):
    try:
        pid = os.fork()
    except BlockingIOError:
        break
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    children += 1
print(children)
"""


@pytest.fixture
def root() -> Iterator[str]:
    yield from cgroup_root(["pids"])


def _isolator(root: str) -> PidsIsolator:
    return create(Host(CgroupsV1(HIERARCHY), root))


def _read(root: str, container: str, control: str) -> str:
    return Path(HIERARCHY, "pids", root, container, control).read_text().strip()


def test_pids_max_comes_from_the_pids_resource_only() -> None:
    assert pids_max(Resources()) == "max"  # Mesos sets none
    assert pids_max(Resources.scalar_of("cpus", 1)) == "max"
    assert pids_max(Resources.scalar_of("pids", 100)) == "100"


@pytest.mark.cgroups
async def test_a_container_is_counted_and_unlimited_by_default(root: str, tmp_path: Path) -> None:
    isolator = _isolator(root)
    info = await isolator.prepare("c1", container_config("c1", Resources.scalar_of("cpus", 1),
                                                         tmp_path))
    assert info is not None
    assert info.cgroup_procs == (f"{HIERARCHY}/pids/{root}/c1/cgroup.procs",)
    assert _read(root, "c1", "pids.max") == "max"
    process = await launch_python(FORK_FIVE + "time.sleep(30)", tmp_path / "c1",
                                  info.cgroup_procs)
    await until(lambda: len(_read(root, "c1", "cgroup.procs").split()) == 6)
    usage = await isolator.usage("c1")
    assert usage is not None
    assert usage.processes == 6  # python and its five children, all in the cgroup
    assert usage.threads >= 6
    assert usage.timestamp > 0
    await isolator.cleanup("c1")
    assert await process.exited == -9  # cleanup kills what is left in the cgroup
    assert not os.path.exists(f"{HIERARCHY}/pids/{root}/c1")
    await isolator.cleanup("c1")  # idempotent
    assert await isolator.usage("c1") is None


@pytest.mark.cgroups
async def test_the_pids_resource_caps_forks(root: str, tmp_path: Path) -> None:
    isolator = _isolator(root)
    resources = Resources.scalar_of("cpus", 1) + Resources.scalar_of("pids", 3)
    info = await isolator.prepare("c1", container_config("c1", resources, tmp_path))
    assert info is not None
    assert _read(root, "c1", "pids.max") == "3"
    process = await launch_python(FORK_FIVE, tmp_path / "c1", info.cgroup_procs)
    # python itself and two children make three: the third fork gets EAGAIN.
    assert (await output(process, tmp_path / "c1")).strip() == "2"
    await isolator.update("c1", Resources.scalar_of("pids", 50))
    assert _read(root, "c1", "pids.max") == "50"
    await isolator.update("c1", Resources())
    assert _read(root, "c1", "pids.max") == "max"
    await isolator.cleanup("c1")


@pytest.mark.cgroups
async def test_recover_keeps_known_containers_and_removes_the_others(
        root: str, tmp_path: Path) -> None:
    isolator = _isolator(root)
    for name in ("known", "orphan"):
        await isolator.prepare(name, container_config(name, Resources(), tmp_path))
    info = await isolator.prepare("orphan", container_config("orphan", Resources(), tmp_path))
    assert info is not None
    orphan = await launch_python("import time; time.sleep(30)", tmp_path / "o", info.cgroup_procs)
    await until(lambda: _read(root, "orphan", "cgroup.procs") != "")
    # A new agent: a fresh isolator that knows only "known" from its checkpoints.
    await _isolator(root).recover(["known"])
    assert await orphan.exited == -9
    assert CgroupsV1(HIERARCHY).children("pids", root) == ["known"]
    await isolator.cleanup("known")
