"""The composition root: the agent's flags become each component's small frozen config, and the
containerizers are built from those, here and nowhere else.

Nothing below the agent reads :class:`AgentConfig`: the containerizers, the isolators and the
image provisioner each take a config of their own, defined next to them::

    AgentConfig --+--> IsolatorConfigs (isolators/registry.py: CpuConfig, DevicesConfig,
                  |      FilesystemConfig, PortsConfig, CapabilitiesConfig, SeccompConfig,
                  |      GpuConfig) --> create_isolators(REGISTRY, ...)  --+
                  +--> ProvisionerConfig (images/provisioner.py) ----------+--> MesosContainerizer
                  +--> DockerConfig (containerizer/docker.py) -------------> DockerContainerizer
                                                        both --> ComposingContainerizer

``isolators/`` and ``images/`` are installed as ``agent_runtime.isolators`` and
``agent_runtime.images`` (pyproject's package-dir) while mypy checks them, in the tree, as the
packages ``isolators`` and ``images``: the ``TYPE_CHECKING`` imports below give mypy the same
modules under the names it knows, so what is built here is type-checked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent_runtime.agent.config import AgentConfig
from agent_runtime.containerizer.composing import KNOWN, ComposingContainerizer
from agent_runtime.containerizer.containerizer import Containerizer
from agent_runtime.containerizer.forkserver import ForkServer
from agent_runtime.containerizer.isolation import create_isolators
from agent_runtime.containerizer.isolator import Isolator
from agent_runtime.containerizer.launcher import PosixLauncher
from agent_runtime.containerizer.mesos import MesosContainerizer
from agent_runtime.containerizer.provisioning import Provisioner, providers
from agent_runtime.errors import FlagError, RuntimeErrorBase
from agent_runtime.resources import parse

if TYPE_CHECKING:
    from images import gc, limits
    from images import provisioner as images_provisioner
    from isolators import (
        cgroups_cpu,
        cgroups_devices,
        filesystem_linux,
        gpu_nvidia,
        linux_capabilities,
        linux_seccomp,
        network_ports,
        registry,
    )
else:
    from agent_runtime.images import gc, limits
    from agent_runtime.images import provisioner as images_provisioner
    from agent_runtime.isolators import (
        cgroups_cpu,
        cgroups_devices,
        filesystem_linux,
        gpu_nvidia,
        linux_capabilities,
        linux_seccomp,
        network_ports,
        registry,
    )


def isolator_configs(config: AgentConfig) -> registry.IsolatorConfigs:
    offered = parse(config.resources, config.default_role).scalar("gpus") \
        if config.resources else 0
    return registry.IsolatorConfigs(
        cpu=cgroups_cpu.CpuConfig(enable_cfs=config.cgroups_enable_cfs),
        devices=cgroups_devices.DevicesConfig(allowed_devices=config.allowed_devices),
        filesystem=filesystem_linux.FilesystemConfig(
            sandbox_directory=config.sandbox_directory),
        ports=network_ports.PortsConfig(
            watch_interval=float(config.container_ports_watch_interval),
            enforce=config.enforce_container_ports,
            agent_range=network_ports.agent_ports(config.resources, config.default_role)
            if config.check_agent_port_range_only else None),
        capabilities=linux_capabilities.CapabilitiesConfig(
            effective=config.effective_capabilities, bounding=config.bounding_capabilities),
        seccomp=linux_seccomp.SeccompConfig(
            config_dir=config.seccomp_config_dir, profile_name=config.seccomp_profile_name,
            effective_capabilities=config.effective_capabilities),
        # Whole GPUs only: the master refuses fractions (resources.py), so this truncates none.
        gpu=gpu_nvidia.GpuConfig(offered=int(offered)),
    )


def build_isolators(config: AgentConfig) -> list[Isolator]:
    """The isolators ``--isolation`` names, in its order (Mesos's start-up refusals first)."""
    return create_isolators(registry.REGISTRY, isolator_configs(config), config.isolation,
                            providers(config.image_providers), config.cgroups_hierarchy,
                            config.cgroups_root)


def provisioner_config(config: AgentConfig) -> images_provisioner.ProvisionerConfig:
    try:
        gc_config = gc.parse_gc_config(config.image_gc_config) if config.image_gc_config \
            else None
    except RuntimeErrorBase as exc:
        raise FlagError(str(exc)) from exc
    return images_provisioner.ProvisionerConfig(
        work_dir=config.work_dir, store_dir=config.docker_store_dir,
        registry=config.docker_registry, docker_config=config.docker_config,
        limits=limits.SizeLimits(max_layer=config.image_max_layer_size,
                                 max_image=config.image_max_size),
        gc=gc_config)


def build_provisioner(config: AgentConfig) -> Provisioner | None:
    """A Docker image provisioner when ``--image_providers`` names docker, else None."""
    if "docker" not in providers(config.image_providers):
        return None
    try:
        return images_provisioner.Provisioner.from_config(provisioner_config(config))
    except RuntimeErrorBase as exc:  # a registry it cannot use, a bad backend: the flags' fault
        raise FlagError(str(exc)) from exc


async def build_containerizer(config: AgentConfig,
                              agent_id: str | None = None) -> ComposingContainerizer:
    """The members ``--containerizers`` names; Docker needs an engine that answers.
    ``agent_id`` is the checkpointed one, if any: whose Docker containers are ours."""
    names = [name.strip() for name in config.containerizers.split(",") if name.strip()]
    unknown = [name for name in names if name not in KNOWN]
    if unknown or not names:
        raise FlagError(f"--containerizers: unknown {unknown or names}; known: {', '.join(KNOWN)}")
    launcher = PosixLauncher()
    members: dict[str, Containerizer] = {}
    for name in dict.fromkeys(names):
        if name == "mesos":
            members[name] = MesosContainerizer(
                launcher, build_isolators(config), provisioner=build_provisioner(config),
                fork_server=ForkServer(launcher))
        else:
            members[name] = await _docker(config, launcher, agent_id)
    return ComposingContainerizer(members)


async def _docker(config: AgentConfig, launcher: PosixLauncher,
                  agent_id: str | None) -> Containerizer:
    # Imported here: the Docker SDK costs start-up time that agents without Docker skip.
    from agent_runtime.containerizer.docker import DockerConfig, DockerContainerizer
    from agent_runtime.containerizer.docker_engine import DockerEngine, DockerEngineError

    socket = config.docker_socket.removeprefix("unix://")
    if "://" in socket:
        # The docker executor reaches the engine too, over a unix socket only.
        raise FlagError(f"--docker_socket must be a unix socket path, not {socket!r}")
    try:
        engine = await DockerEngine.connect(socket)
    except DockerEngineError as exc:
        raise FlagError(f"--containerizers={config.containerizers}: {exc}") from exc
    docker_config = DockerConfig(
        registry=config.docker_registry, docker_config=config.docker_config,
        sandbox_directory=config.sandbox_directory,
        stop_timeout=float(config.docker_stop_timeout), kill_orphans=config.docker_kill_orphans,
        agent_id=agent_id)
    return DockerContainerizer(docker_config, engine, launcher)
