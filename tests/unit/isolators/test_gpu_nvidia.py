"""``gpu/nvidia`` on this machine's real devices hierarchy. There is no GPU on this machine: NVML
is a fake module standing in for nvidia-ml-py's ``pynvml`` (two GPUs whose minor numbers differ
from their indices, as they can on real hosts). Everything else is real: the devices cgroup, and
a process that opens device nodes 195:<minor> made here, where the cgroup answering EPERM tells
a denied GPU from an allowed one (ENXIO: no driver behind the node). The same isolator on a real
card: ``scripts/gpu_check.py``.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_runtime.agent.composition import build_isolators
from agent_runtime.agent.config import AgentConfig
from agent_runtime.containerizer.cgroups import CgroupsV1
from agent_runtime.containerizer.isolator import Isolator
from agent_runtime.errors import FlagError, LaunchError
from agent_runtime.isolators.gpu_nvidia import (
    Gpu,
    GpuIsolator,
    control_entries,
    discover_gpus,
    uvm_major,
)
from agent_runtime.resources import Resources
from tests.unit.isolators.real_cgroups import (
    HIERARCHY,
    cgroup_root,
    container_config,
    launch_python,
    output,
)

ISOLATION = "cgroups/devices,gpu/nvidia"
MINORS = (3, 1)  # NVML index 0 is /dev/nvidia3, index 1 is /dev/nvidia1


def _fake_nvml(minors: tuple[int, ...] = MINORS) -> types.ModuleType:
    module = types.ModuleType("pynvml")
    calls: list[str] = []
    module.nvmlInit = lambda: calls.append("init")  # type: ignore[attr-defined]
    module.nvmlShutdown = lambda: calls.append("shutdown")  # type: ignore[attr-defined]
    module.nvmlDeviceGetCount = lambda: len(minors)  # type: ignore[attr-defined]
    module.nvmlDeviceGetHandleByIndex = lambda index: ("handle", index)  # type: ignore[attr-defined]
    module.nvmlDeviceGetMinorNumber = lambda handle: minors[handle[1]]  # type: ignore[attr-defined]
    module.calls = calls  # type: ignore[attr-defined]
    return module


@pytest.fixture
def nvml(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    fake = _fake_nvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    return fake


@pytest.fixture
def root() -> Iterator[str]:
    yield from cgroup_root(["devices"])


def _gpus(count: int) -> Resources:
    return Resources.scalar_of("cpus", 0.1) + Resources.scalar_of("gpus", count)


def _listing(root: str, container: str) -> list[str]:
    return Path(HIERARCHY, "devices", root, container, "devices.list").read_text().splitlines()


def _build(config: AgentConfig) -> tuple[Isolator, GpuIsolator]:
    """cgroups/devices and gpu/nvidia as the agent builds them, through its composition root."""
    devices, gpu = build_isolators(dataclasses.replace(config, cgroups_hierarchy=HIERARCHY))
    assert isinstance(gpu, GpuIsolator)
    return devices, gpu


class _Pair:
    """cgroups/devices then gpu/nvidia, driven as the containerizer drives them."""

    def __init__(self, root: str, config: AgentConfig | None = None) -> None:
        config = config or AgentConfig(isolation=ISOLATION, cgroups_root=root)
        self.devices, self.gpu = _build(config)

    async def prepare(self, container: str, resources: Resources, directory: Path
                      ) -> tuple[tuple[str, ...], dict[str, str]]:
        config = container_config(container, resources, directory)
        procs: tuple[str, ...] = ()
        environment: dict[str, str] = {}
        for isolator in (self.devices, self.gpu):
            info = await isolator.prepare(container, config)
            if info is not None:
                procs += info.cgroup_procs
                environment.update(info.environment)
        return procs, environment

    async def cleanup(self, container: str) -> None:
        await self.gpu.cleanup(container)
        await self.devices.cleanup(container)


def test_gpus_are_discovered_with_their_minor_numbers(nvml: types.ModuleType) -> None:
    assert discover_gpus() == [Gpu(0, 3), Gpu(1, 1)]
    assert nvml.calls == ["init", "shutdown"]


def test_an_unusable_nvml_or_a_missing_cgroups_devices_stops_the_agent(
        monkeypatch: pytest.MonkeyPatch, nvml: types.ModuleType) -> None:
    with pytest.raises(FlagError, match="needs cgroups/devices, named before it"):
        build_isolators(AgentConfig(isolation="gpu/nvidia", cgroups_hierarchy=HIERARCHY))
    with pytest.raises(FlagError, match="needs cgroups/devices, named before it"):
        build_isolators(AgentConfig(isolation="gpu/nvidia,cgroups/devices",
                                    cgroups_hierarchy=HIERARCHY))

    def fail() -> None:
        raise RuntimeError("NVML Shared Library Not Found")

    nvml.nvmlInit = fail  # type: ignore[attr-defined]
    with pytest.raises(FlagError, match="NVML is not usable here"):
        discover_gpus()


def test_the_uvm_major_comes_from_proc_devices(tmp_path: Path) -> None:
    devices = tmp_path / "devices"
    devices.write_text("Character devices:\n  1 mem\n195 nvidia\n508 nvidia-uvm\n\n"
                       "Block devices:\n  7 loop\n")
    assert uvm_major(str(devices)) == 508
    assert control_entries(508) == ("c 195:255 rwm", "c 508:0 rwm", "c 508:1 rwm")
    devices.write_text("Character devices:\n  1 mem\n\nBlock devices:\n  7 loop\n")
    assert uvm_major(str(devices)) is None
    assert control_entries(None) == ("c 195:255 rwm",)
    assert uvm_major(str(tmp_path / "missing")) is None


@pytest.mark.cgroups
async def test_two_containers_get_different_gpus_and_cleanup_frees_them(
        root: str, tmp_path: Path, nvml: types.ModuleType) -> None:
    pair = _Pair(root)
    _, env_a = await pair.prepare("a", _gpus(1), tmp_path)
    assert env_a == {"NVIDIA_VISIBLE_DEVICES": "0"}
    assert "c 195:3 rwm" in _listing(root, "a") and "c 195:255 rwm" in _listing(root, "a")
    assert "c 195:1 rwm" not in _listing(root, "a")

    _, env_b = await pair.prepare("b", _gpus(1), tmp_path)
    assert env_b == {"NVIDIA_VISIBLE_DEVICES": "1"}
    assert "c 195:1 rwm" in _listing(root, "b") and "c 195:3 rwm" not in _listing(root, "b")

    _, env_none = await pair.prepare("none", Resources.scalar_of("cpus", 1), tmp_path)
    assert env_none == {}
    assert not [line for line in _listing(root, "none") if line.startswith("c 195:")]

    with pytest.raises(LaunchError, match="Requested 1 gpus but only 0 of 2 are free"):
        await pair.prepare("c", _gpus(1), tmp_path)
    await pair.cleanup("c")  # what the containerizer does after a failed prepare

    await pair.cleanup("a")
    await pair.cleanup("a")  # idempotent
    assert pair.gpu.free() == [Gpu(0, 3)]
    _, env_c = await pair.prepare("c", _gpus(1), tmp_path)
    assert env_c == {"NVIDIA_VISIBLE_DEVICES": "0"}
    for container in ("b", "c", "none"):
        await pair.cleanup(container)
    assert pair.gpu.free() == [Gpu(0, 3), Gpu(1, 1)]


@pytest.mark.cgroups
async def test_a_process_opens_its_gpu_and_not_the_other(
        root: str, tmp_path: Path, nvml: types.ModuleType) -> None:
    nodes = {}
    for minor in (*MINORS, 255):
        node = tmp_path / f"nvidia{minor}"
        os.mknod(node, 0o600 | 0o020000, os.makedev(195, minor))  # S_IFCHR
        nodes[minor] = str(node)
    pair = _Pair(root)
    procs, _ = await pair.prepare("a", _gpus(1), tmp_path)
    code = ("import errno, os\n"
            f"for path in {list(nodes.values())!r}:\n"
            "    try:\n"
            "        os.close(os.open(path, os.O_RDWR))\n"
            "        print(path, 'ok')\n"
            "    except OSError as exc:\n"
            "        print(path, errno.errorcode[exc.errno])\n")
    process = await launch_python(code, tmp_path / "a", procs)
    result = dict(line.split(" ") for line in (await output(process, tmp_path / "a")).split("\n")
                  if line)
    # No NVIDIA driver here: a node the cgroup lets through has nothing behind it (ENXIO).
    assert result == {nodes[3]: "ENXIO", nodes[255]: "ENXIO", nodes[1]: "EPERM"}
    await pair.cleanup("a")


@pytest.mark.cgroups
async def test_update_grows_and_shrinks_and_recover_rebuilds_the_allocation(
        root: str, tmp_path: Path, nvml: types.ModuleType) -> None:
    pair = _Pair(root)
    await pair.prepare("a", _gpus(0), tmp_path)
    await pair.gpu.update("a", _gpus(2))
    assert {"c 195:3 rwm", "c 195:1 rwm", "c 195:255 rwm"} <= set(_listing(root, "a"))
    await pair.gpu.update("a", _gpus(1))
    assert "c 195:3 rwm" in _listing(root, "a") and "c 195:1 rwm" not in _listing(root, "a")
    assert pair.gpu.free() == [Gpu(1, 1)]

    # A restarted agent: the allocation comes back from the cgroup, not from memory.
    restarted = GpuIsolator(CgroupsV1(HIERARCHY), root, [Gpu(0, 3), Gpu(1, 1)], None)
    await restarted.recover(["a", "gone"])
    assert restarted.allocated("a") == [Gpu(0, 3)]
    assert restarted.free() == [Gpu(1, 1)]
    await pair.cleanup("a")


@pytest.mark.cgroups
async def test_the_resources_flag_limits_the_gpus_handed_out(
        root: str, nvml: types.ModuleType) -> None:
    config = AgentConfig(isolation=ISOLATION, cgroups_root=root, resources="cpus:1;gpus:1")
    assert _build(config)[1].gpus == (Gpu(0, 3),)
    too_many = AgentConfig(isolation=ISOLATION, cgroups_root=root, resources="gpus:3")
    with pytest.raises(FlagError, match="gpus:3 but NVML finds 2"):
        _build(too_many)
