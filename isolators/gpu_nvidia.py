"""``gpu/nvidia``: containers asking for ``gpus`` get that many whole GPUs, exclusively.

The agent's GPUs come from NVML at start (the library nvidia-ml-py, ``pynvml``; the same one
``agent/discovery.py`` counts them with), each named by its NVML index (what ``nvidia-smi``
shows) and isolated by its device minor number (``/dev/nvidia<minor>``, major 195), as Mesos.
With ``--resources=gpus:N`` only the first N are handed out.

Isolation is the devices cgroup that ``cgroups/devices`` makes and fills with its deny-all
whitelist; this isolator needs it, earlier in ``--isolation``, and adds to that cgroup (as Mesos,
which refuses ``gpu/nvidia`` without ``cgroups/devices``). A container with GPUs gets
``c 195:<minor> rwm`` for each of its GPUs, plus the control devices every CUDA program opens:
``/dev/nvidiactl`` (195:255) and ``/dev/nvidia-uvm``, ``/dev/nvidia-uvm-tools`` (major from
``/proc/devices``, minors 0 and 1; absent when the uvm module is not loaded). A container
without GPUs gets no NVIDIA device at all. Allocation is first free GPU by NVML index.

Environment: Mesos sets none for command tasks. For convenience we set
``NVIDIA_VISIBLE_DEVICES`` to the NVML indices (what nvidia-container tooling reads). We do not
set ``CUDA_VISIBLE_DEVICES``: CUDA inside the container enumerates only the GPUs it can open,
renumbered from 0, so host indices there would hide the very GPUs the container was given.

Recovery: the allocation is rebuilt from the ``devices.list`` of each known container's cgroup,
so an agent restart neither loses nor double-books a GPU.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from agent_runtime.containerizer.cgroups import Cgroups, require_controller
from agent_runtime.containerizer.containerizer import ContainerConfig
from agent_runtime.containerizer.isolation import Host
from agent_runtime.containerizer.isolator import Isolator, LaunchInfo, container_resources
from agent_runtime.errors import FlagError, LaunchError
from agent_runtime.resources import Resources

from .cgroups_devices import CONTROLLER, device_entry

log = logging.getLogger(__name__)

NVIDIA_MAJOR = 195
NVIDIACTL_MINOR = 255
UVM_NAME = "nvidia-uvm"
VISIBLE_DEVICES = "NVIDIA_VISIBLE_DEVICES"
_GPU_LINE = re.compile(rf"^c {NVIDIA_MAJOR}:(\d+) rwm$")


@dataclass(frozen=True, order=True)
class Gpu:
    index: int  # NVML index, as nvidia-smi numbers the GPUs
    minor: int  # /dev/nvidia<minor>


def discover_gpus() -> list[Gpu]:
    """The host's NVIDIA GPUs through NVML; FlagError when NVML is not usable."""
    try:
        # Imported here: the agent loads without the library, and tests can stand a fake in.
        import pynvml
    except ImportError as exc:
        raise FlagError("gpu/nvidia: the NVML library (nvidia-ml-py) is not installed") from exc
    try:
        pynvml.nvmlInit()
        try:
            gpus = []
            for index in range(int(pynvml.nvmlDeviceGetCount())):
                handle = pynvml.nvmlDeviceGetHandleByIndex(index)
                gpus.append(Gpu(index, int(pynvml.nvmlDeviceGetMinorNumber(handle))))
            return gpus
        finally:
            pynvml.nvmlShutdown()
    except Exception as exc:  # NVML raises its own error types for every failure
        raise FlagError(f"gpu/nvidia: NVML is not usable here ({exc})") from exc


def uvm_major(proc_devices: str = "/proc/devices") -> int | None:
    """The character major of ``nvidia-uvm``, or None when that module is not loaded."""
    try:
        with open(proc_devices) as file:
            text = file.read()
    except OSError:
        return None
    characters = text.split("Block devices:")[0]
    for line in characters.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[1] == UVM_NAME and fields[0].isdigit():
            return int(fields[0])
    return None


def control_entries(uvm: int | None) -> tuple[str, ...]:
    """Whitelist lines for the devices every CUDA program opens besides its GPUs."""
    entries = [device_entry("c", NVIDIA_MAJOR, NVIDIACTL_MINOR, "rwm")]
    if uvm is not None:
        entries += [device_entry("c", uvm, 0, "rwm"), device_entry("c", uvm, 1, "rwm")]
    return tuple(entries)


def gpu_entry(gpu: Gpu) -> str:
    return device_entry("c", NVIDIA_MAJOR, gpu.minor, "rwm")


class GpuIsolator(Isolator):
    def __init__(self, cgroups: Cgroups, root: str, gpus: Sequence[Gpu],
                 uvm: int | None) -> None:
        self.cgroups = cgroups
        self.root = root
        self.gpus = tuple(sorted(gpus))
        self.uvm = uvm
        self.controls = control_entries(uvm)
        self._allocated: dict[str, list[Gpu]] = {}

    def cgroup(self, container_id: str) -> str:
        return f"{self.root}/{container_id}"

    def free(self) -> list[Gpu]:
        taken = {gpu for gpus in self._allocated.values() for gpu in gpus}
        return [gpu for gpu in self.gpus if gpu not in taken]

    def allocated(self, container_id: str) -> list[Gpu]:
        return list(self._allocated.get(container_id, ()))

    async def recover(self, known: Collection[str]) -> None:
        by_minor = {gpu.minor: gpu for gpu in self.gpus}
        for container_id in known:
            try:
                listing = self.cgroups.read(CONTROLLER, self.cgroup(container_id), "devices.list")
            except FileNotFoundError:
                continue
            gpus = [by_minor[int(match.group(1))] for line in listing.splitlines()
                    if (match := _GPU_LINE.match(line.strip())) and int(match.group(1)) in by_minor]
            if gpus:
                self._allocated[container_id] = sorted(gpus)

    async def prepare(self, container_id: str, config: ContainerConfig) -> LaunchInfo | None:
        wanted = _count(container_resources(config))
        if wanted == 0:
            return None  # cgroups/devices already denies every NVIDIA device
        gpus = self._take(container_id, wanted)
        cgroup = self.cgroup(container_id)
        for entry in (*self.controls, *map(gpu_entry, gpus)):
            self.cgroups.write(CONTROLLER, cgroup, "devices.allow", entry)
        # In an image's rootfs, /dev is made afresh: these nodes are made there too.
        devices = [[f"nvidia{gpu.minor}", NVIDIA_MAJOR, gpu.minor] for gpu in gpus]
        devices.append(["nvidiactl", NVIDIA_MAJOR, NVIDIACTL_MINOR])
        if self.uvm is not None:
            devices += [[UVM_NAME, self.uvm, 0], [f"{UVM_NAME}-tools", self.uvm, 1]]
        return LaunchInfo(environment={VISIBLE_DEVICES: _indices(gpus)},
                          rootfs_launch={"devices": devices})

    def _take(self, container_id: str, count: int) -> list[Gpu]:
        free = self.free()
        if count > len(free):
            raise LaunchError(f"Requested {count} gpus but only {len(free)} of "
                              f"{len(self.gpus)} are free")
        gpus = free[:count]
        # Booked before the cgroup writes: cleanup, run after a failed launch, frees them.
        self._allocated.setdefault(container_id, []).extend(gpus)
        return gpus

    async def update(self, container_id: str, resources: Resources) -> None:
        """Grow or shrink a running container's GPUs (the most recently given go first)."""
        current = self._allocated.get(container_id, [])
        wanted = _count(resources)
        cgroup = self.cgroup(container_id)
        if wanted > len(current):
            if not current:
                for entry in self.controls:
                    self.cgroups.write(CONTROLLER, cgroup, "devices.allow", entry)
            for gpu in self._take(container_id, wanted - len(current)):
                self.cgroups.write(CONTROLLER, cgroup, "devices.allow", gpu_entry(gpu))
        elif wanted < len(current):
            released = current[wanted:]
            for gpu in released:
                self.cgroups.write(CONTROLLER, cgroup, "devices.deny", gpu_entry(gpu))
            del current[wanted:]
            if not current:
                self._allocated.pop(container_id, None)

    async def cleanup(self, container_id: str) -> None:
        # The cgroup itself is cgroups/devices's to remove (it cleans up after us).
        self._allocated.pop(container_id, None)


def _count(resources: Resources) -> int:
    # Whole GPUs only: the master refuses fractions (resources.py), so this truncates nothing.
    return int(resources.scalar("gpus"))


def _indices(gpus: Sequence[Gpu]) -> str:
    return ",".join(str(gpu.index) for gpu in gpus)


@dataclass(frozen=True)
class GpuConfig:
    offered: int = 0  # the gpus --resources gives; 0: every GPU NVML finds


def create(config: GpuConfig, host: Host) -> GpuIsolator:
    """Needs cgroups/devices named before it (declared in the registry, checked at start)."""
    cgroups = host.backend()
    require_controller(cgroups, CONTROLLER, host.cgroups_root)
    gpus = discover_gpus()
    offered = config.offered
    if offered > len(gpus):
        raise FlagError(f"--resources: gpus:{offered} but NVML finds {len(gpus)} GPUs")
    if offered:
        gpus = gpus[:offered]
    log.info("gpu/nvidia: GPUs %s", ", ".join(f"{gpu.index} (minor {gpu.minor})"
                                             for gpu in gpus) or "none")
    return GpuIsolator(cgroups, host.cgroups_root, gpus, uvm_major())
