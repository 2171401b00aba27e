"""Every isolator, declared once: its ``--isolation`` name, its factory and what it needs.

``agent_runtime.containerizer.isolation`` reads this table (and knows no isolator by name);
the composition root (``agent/composition.py``) fills :class:`IsolatorConfigs` from the flags.
The imports are relative so that mypy, which checks this folder as the package ``isolators``,
follows every isolator from here; installed, the folder is ``agent_runtime.isolators``.

Order matters only where declared: ``gpu/nvidia`` writes its lines into the devices cgroup that
``cgroups/devices`` prepares, so it must come after it; ``namespaces/pid`` needs the mount
namespace of ``filesystem/linux`` for its /proc (both refusals are Mesos's).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent_runtime.containerizer.isolation import IsolatorSpec

from . import (
    cgroups_cpu,
    cgroups_devices,
    cgroups_mem,
    cgroups_pids,
    filesystem_linux,
    gpu_nvidia,
    linux_capabilities,
    linux_seccomp,
    network_ports,
)
from .docker_runtime import DockerRuntimeIsolator
from .linux_nnp import NoNewPrivilegesIsolator
from .namespaces_ipc import IpcNamespaceIsolator
from .namespaces_pid import PidNamespaceIsolator
from .namespaces_uts import UtsNamespaceIsolator


@dataclass(frozen=True)
class IsolatorConfigs:
    """Each isolator's own config; the defaults are the flags' defaults."""

    cpu: cgroups_cpu.CpuConfig = field(default_factory=cgroups_cpu.CpuConfig)
    devices: cgroups_devices.DevicesConfig = field(default_factory=cgroups_devices.DevicesConfig)
    filesystem: filesystem_linux.FilesystemConfig = field(
        default_factory=filesystem_linux.FilesystemConfig)
    ports: network_ports.PortsConfig = field(default_factory=network_ports.PortsConfig)
    capabilities: linux_capabilities.CapabilitiesConfig = field(
        default_factory=linux_capabilities.CapabilitiesConfig)
    seccomp: linux_seccomp.SeccompConfig = field(default_factory=linux_seccomp.SeccompConfig)
    gpu: gpu_nvidia.GpuConfig = field(default_factory=gpu_nvidia.GpuConfig)


Spec = IsolatorSpec[IsolatorConfigs]


REGISTRY: tuple[Spec, ...] = (
    Spec("filesystem/linux", lambda c, host: filesystem_linux.create(c.filesystem)),
    Spec("namespaces/pid", lambda c, host: PidNamespaceIsolator(),
         requires=("filesystem/linux",)),
    Spec("docker/runtime", lambda c, host: DockerRuntimeIsolator()),
    Spec("cgroups/cpu", lambda c, host: cgroups_cpu.create(c.cpu, host), cgroups=True,
         controller="cpu"),
    Spec("cgroups/mem", lambda c, host: cgroups_mem.create(host), cgroups=True,
         controller="memory"),
    Spec("cgroups/pids", lambda c, host: cgroups_pids.create(host), cgroups=True,
         controller="pids"),
    Spec("cgroups/devices", lambda c, host: cgroups_devices.create(c.devices, host),
         cgroups=True, controller="devices"),
    Spec("network/ports", lambda c, host: network_ports.create(c.ports, host), cgroups=True),
    Spec("gpu/nvidia", lambda c, host: gpu_nvidia.create(c.gpu, host), cgroups=True,
         after=("cgroups/devices",)),
    Spec("linux/capabilities", lambda c, host: linux_capabilities.create(c.capabilities)),
    Spec("linux/nnp", lambda c, host: NoNewPrivilegesIsolator()),
    Spec("linux/seccomp", lambda c, host: linux_seccomp.create(c.seccomp)),
    Spec("namespaces/ipc", lambda c, host: IpcNamespaceIsolator()),
    Spec("namespaces/uts", lambda c, host: UtsNamespaceIsolator()),
)
