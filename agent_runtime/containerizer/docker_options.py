"""A task with a DOCKER ContainerInfo, translated into the container we create for it.

The rules are Mesos's ``docker run`` options (``Docker::RunOptions::create``): cpu shares are
1024 per cpu (at least 2), memory is ``mem`` MB (at least 32), the sandbox is mounted at
``--sandbox_directory`` and named by ``MESOS_SANDBOX``, networking is HOST unless the task says
otherwise, ``port_mappings`` need BRIDGE or USER networking and host ports the task holds, and
``shell=true`` replaces the image's entrypoint with ``/bin/sh -c``. Pure: no engine calls, so every
rule is checked by unit tests; a task that breaks one gets a :class:`LaunchError` that says which.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from agent_runtime.containerizer.docker_engine import (
    LABEL_AGENT,
    LABEL_CONTAINER,
    LABEL_EXECUTOR,
    LABEL_FRAMEWORK,
    LABEL_TASK,
    ContainerSpec,
)
from agent_runtime.errors import LaunchError
from agent_runtime.proto import mesos_pb2

NAME_PREFIX = "mesos-"
MIN_MEMORY_MB = 32.0
MIN_CPU_SHARES = 2
CPU_SHARES_PER_CPU = 1024
# Host facts that would be wrong inside an image (its own PATH), or that only libprocess needs.
# The executor's token stays with the executor on the host: the task must not call as it.
HOST_ONLY_ENV = frozenset({"PATH", "LIBPROCESS_IP", "LIBPROCESS_PORT",
                           "MESOS_EXECUTOR_AUTHENTICATION_TOKEN"})

DockerInfo = mesos_pb2.ContainerInfo.DockerInfo
Volume = mesos_pb2.Volume


def container_name(container_id: str) -> str:
    return f"{NAME_PREFIX}{container_id}"


@dataclass(frozen=True)
class TaskContainer:
    """Everything the translation reads: the task and where the agent put it."""

    task: mesos_pb2.TaskInfo
    container_id: str
    agent_id: str
    framework_id: str
    executor_id: str
    sandbox: str  # on the host
    sandbox_directory: str  # where the sandbox appears inside the container
    environment: Mapping[str, str]  # the agent's executor environment


def build(spec: TaskContainer) -> ContainerSpec:
    task = spec.task
    container = task.container
    if container.type != mesos_pb2.ContainerInfo.DOCKER or not container.docker.image:
        raise LaunchError("A DOCKER container needs 'container.docker.image'")
    docker = container.docker
    name = container_name(spec.container_id)
    fields = _parameters(docker)
    network_mode = _network_mode(container, str(fields.pop("network", "")))
    hostname = container.hostname or None
    if hostname and network_mode == "host":
        raise LaunchError("Unable to set hostname with host networking")
    entrypoint, command = _command(task)
    binds, volume_driver = _volumes(container, spec.sandbox, spec.sandbox_directory)
    return ContainerSpec(
        name=name,
        image=docker.image,
        command=command,
        entrypoint=entrypoint,
        environment=_environment(spec, name),
        labels=_labels(spec),
        network_mode=network_mode,
        cpu_shares=max(int(CPU_SHARES_PER_CPU * scalar(task, "cpus")), MIN_CPU_SHARES),
        memory_bytes=_memory_bytes(task),
        binds=(f"{spec.sandbox}:{spec.sandbox_directory}:rw", *binds),
        port_bindings=_port_bindings(task, network_mode),
        privileged=docker.privileged,
        hostname=hostname,
        volume_driver=volume_driver,
        **fields,  # type: ignore[arg-type]
    )


def scalar(task: mesos_pb2.TaskInfo, name: str) -> float:
    return sum(r.scalar.value for r in task.resources
               if r.name == name and r.type == mesos_pb2.Value.SCALAR)


def _memory_bytes(task: mesos_pb2.TaskInfo) -> int | None:
    if not any(r.name == "mem" for r in task.resources):
        return None
    return int(max(scalar(task, "mem"), MIN_MEMORY_MB) * 1024 * 1024)


def _command(task: mesos_pb2.TaskInfo) -> tuple[list[str] | None, list[str] | None]:
    """(entrypoint, cmd): ``shell`` replaces the entrypoint (MESOS-1770), otherwise ``value``
    and ``arguments`` are arguments to the image's own entrypoint."""
    if not task.HasField("command"):
        return None, None
    command = task.command
    if command.shell:
        if not command.value:
            raise LaunchError("Shell specified but no command value provided")
        return ["/bin/sh"], ["-c", command.value]
    args = ([command.value] if command.value else []) + list(command.arguments)
    return None, args or None


def _environment(spec: TaskContainer, name: str) -> dict[str, str]:
    env = {k: v for k, v in spec.environment.items() if k not in HOST_ONLY_ENV}
    env["MESOS_SANDBOX"] = spec.sandbox_directory
    env["MESOS_CONTAINER_NAME"] = name
    for variable in spec.task.command.environment.variables:
        if variable.type == mesos_pb2.Environment.Variable.SECRET:
            raise LaunchError(f"Environment variable '{variable.name}': secrets are not "
                              "supported by the Docker containerizer")
        env[variable.name] = variable.value
    return env


def _labels(spec: TaskContainer) -> dict[str, str]:
    labels = {label.key: label.value for label in spec.task.labels.labels}
    labels.update({
        LABEL_AGENT: spec.agent_id,
        LABEL_FRAMEWORK: spec.framework_id,
        LABEL_EXECUTOR: spec.executor_id,
        LABEL_TASK: spec.task.task_id.value,
        LABEL_CONTAINER: spec.container_id,
    })
    return labels


def _network_mode(container: mesos_pb2.ContainerInfo, override: str) -> str:
    docker = container.docker
    network = docker.network if docker.HasField("network") else DockerInfo.HOST
    if network == DockerInfo.USER:
        names = [info.name for info in container.network_infos if info.name]
        if len(names) != 1:
            raise LaunchError("DockerInfo.network USER needs exactly one network_infos[].name")
        mode = names[0]
    else:
        mode = {DockerInfo.HOST: "host", DockerInfo.BRIDGE: "bridge",
                DockerInfo.NONE: "none"}[network]
    # A `net`/`network` parameter overrides the network mode, as `--net` does in Mesos.
    return override or mode


def _port_bindings(task: mesos_pb2.TaskInfo, network_mode: str) -> dict[str, int]:
    mappings = task.container.docker.port_mappings
    if not mappings:
        return {}
    if network_mode in ("host", "none"):
        raise LaunchError("Port mappings are only supported for bridge and user-defined "
                          f"networks, not '{network_mode}'")
    ranges = [(r.begin, r.end) for res in task.resources
              if res.name == "ports" and res.type == mesos_pb2.Value.RANGES
              for r in res.ranges.range]
    bindings: dict[str, int] = {}
    for mapping in mappings:
        if not any(begin <= mapping.host_port <= end for begin, end in ranges):
            raise LaunchError(f"Port [{mapping.host_port}] not included in resources")
        protocol = (mapping.protocol or "tcp").lower()
        if protocol not in ("tcp", "udp", "sctp"):
            raise LaunchError(f"Port mapping protocol '{mapping.protocol}' is not supported")
        bindings[f"{mapping.container_port}/{protocol}"] = mapping.host_port
    return bindings


def _volumes(container: mesos_pb2.ContainerInfo, sandbox: str,
             sandbox_directory: str) -> tuple[list[str], str | None]:
    binds: list[str] = []
    drivers: set[str] = set()
    for volume in container.volumes:
        if not volume.container_path:
            raise LaunchError("A volume needs 'container_path'")
        target = volume.container_path
        if not os.path.isabs(target):
            target = os.path.join(sandbox_directory, target)
        mode = "ro" if volume.mode == Volume.RO else "rw"
        source: str
        if volume.HasField("source"):
            kind = volume.source.type
            if kind == Volume.Source.DOCKER_VOLUME:
                source = volume.source.docker_volume.name
                if not source:
                    raise LaunchError("A DOCKER_VOLUME volume needs 'docker_volume.name'")
                if volume.source.docker_volume.driver:
                    drivers.add(volume.source.docker_volume.driver)
            elif kind == Volume.Source.HOST_PATH and volume.source.host_path.path:
                source = _host_path(volume.source.host_path.path, sandbox)
            elif kind == Volume.Source.SANDBOX_PATH and (
                volume.source.sandbox_path.type != Volume.Source.SandboxPath.PARENT
            ):
                source = _host_path(volume.source.sandbox_path.path, sandbox, relative=True)
            else:
                raise LaunchError(f"Volume source type {Volume.Source.Type.Name(kind)} is not "
                                  "supported by the Docker containerizer")
        elif volume.host_path:
            source = _host_path(volume.host_path, sandbox)
        else:
            raise LaunchError(f"Volume '{volume.container_path}' needs 'host_path' or 'source'")
        binds.append(f"{source}:{target}:{mode}")
    if len(drivers) > 1:
        raise LaunchError(f"Only one volume driver per container, got {sorted(drivers)}")
    return binds, (drivers.pop() if drivers else None)


def _host_path(path: str, sandbox: str, relative: bool = False) -> str:
    """An absolute host path as is; a relative one inside the sandbox, never outside it."""
    if os.path.isabs(path) and not relative:
        return path
    resolved = os.path.normpath(os.path.join(sandbox, path.lstrip("/")))
    if resolved != sandbox and not resolved.startswith(sandbox.rstrip("/") + "/"):
        raise LaunchError(f"Volume path '{path}' leaves the sandbox")
    return resolved


# DockerInfo.parameters we accept (`--key=value` in Mesos) and the ContainerSpec field each sets.
_SINGLE = {"net": "network", "network": "network", "user": "user", "u": "user",
           "workdir": "working_dir", "w": "working_dir", "shm-size": "shm_size"}
_MULTI = {"cap-add": "cap_add", "cap-drop": "cap_drop", "dns": "dns"}
_FLAGS = {"init": "init", "read-only": "read_only"}


def _parameters(docker: DockerInfo) -> dict[str, object]:
    fields: dict[str, object] = {}
    multi: dict[str, list[str]] = {}
    hosts: dict[str, str] = {}
    for parameter in docker.parameters:
        key, value = parameter.key.lstrip("-"), parameter.value
        if key in _SINGLE:
            fields[_SINGLE[key]] = value
        elif key in _MULTI:
            multi.setdefault(_MULTI[key], []).append(value)
        elif key in _FLAGS:
            fields[_FLAGS[key]] = value.lower() not in ("false", "0")
        elif key == "add-host":
            host, _, address = value.partition(":")
            hosts[host] = address
        else:
            supported = sorted({*_SINGLE, *_MULTI, *_FLAGS, "add-host"})
            raise LaunchError(f"DockerInfo parameter '{parameter.key}' is not supported "
                              f"(supported: {', '.join(supported)})")
    fields.update({name: tuple(values) for name, values in multi.items()})
    if hosts:
        fields["extra_hosts"] = hosts
    return fields
