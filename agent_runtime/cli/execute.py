"""``mesos-execute``: run one task (or command) on the cluster and print its status updates.

As Mesos's: it subscribes, takes the first offer whose resources hold the task, declines the
rest, prints every update, acknowledges it, and exits 0 only when the task ends TASK_FINISHED.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import sys
from dataclasses import dataclass

from agent_runtime import flags
from agent_runtime.codec import jsonpb
from agent_runtime.containerizer import capabilities
from agent_runtime.detector import MasterDetector
from agent_runtime.errors import FlagError, RuntimeErrorBase
from agent_runtime.flags import Duration, flag
from agent_runtime.http_util import JSON, PROTOBUF
from agent_runtime.proto import mesos_pb2, scheduler_pb2
from agent_runtime.resources import Resources, parse
from agent_runtime.scheduler.client import SchedulerClient
from agent_runtime.task_states import TERMINAL_STATES
from agent_runtime.tls import PLAIN, TlsConfig, from_env

Capability = mesos_pb2.FrameworkInfo.Capability


@dataclass(frozen=True)
class ExecuteConfig:
    master: str = flag("", "host:port of the master (required)")
    name: str = flag("", "Task name and task ID")
    command: str | None = flag(None, "Shell command (or the program with --shell=false)")
    shell: bool = flag(True, "Run --command through /bin/sh -c")
    resources: str = flag("cpus:1;mem:128", "Task resources")
    role: str = flag("*", "Role of the framework (single-role)")
    env: str | None = flag(None, "JSON object of environment variables")
    checkpoint: bool = flag(False, "Enable checkpointing for the framework")
    docker_image: str | None = flag(None, "Docker image for the task")
    appc_image: str | None = flag(None, "Appc image for the task")
    containerizer: str = flag("mesos", "mesos or docker")
    task: str | None = flag(None, "TaskInfo as JSON (or a path to a JSON file)")
    framework_capabilities: str | None = flag(None, "Extra capabilities (GPU_RESOURCES)")
    partition_aware: bool = flag(True, "Register as PARTITION_AWARE")
    kill_after: Duration | None = flag(None, "Kill the task after this long")
    content_type: str = flag("protobuf", "protobuf or json")
    principal: str | None = flag(None, "Framework principal")
    user: str | None = flag(None, "User to run the task as")
    effective_capabilities: str | None = flag(
        None, "Capabilities the task holds: JSON {\"capabilities\": [\"NET_RAW\"]} or a list")
    bounding_capabilities: str | None = flag(
        None, "Capabilities the task may ever hold (same forms)")
    framework_name: str = flag("mesos-execute instance", "Framework name")


def build_task(config: ExecuteConfig) -> tuple[mesos_pb2.TaskInfo, Resources]:
    task = mesos_pb2.TaskInfo()
    if config.task:
        text = config.task
        if not text.lstrip().startswith("{") and os.path.exists(text):
            with open(text) as handle:
                text = handle.read()
        task = jsonpb.parse(text, mesos_pb2.TaskInfo)
        return task, Resources.from_proto(task.resources)
    if not config.name:
        raise FlagError("--name is required (or --task)")
    if config.shell and not config.command:
        raise FlagError("--command is required when --shell=true")
    if config.docker_image and config.appc_image:
        raise FlagError("--docker_image and --appc_image cannot both be given")
    task.name = config.name
    task.task_id.value = config.name
    resources = parse(config.resources)
    task.resources.extend(resources.to_proto())
    task.command.shell = config.shell
    if config.command:
        task.command.value = config.command
    if config.env:
        variables = json.loads(config.env)
        if not isinstance(variables, dict):
            raise FlagError("--env must be a JSON object")
        for name, value in variables.items():
            task.command.environment.variables.add(name=name, value=str(value))
    image = config.docker_image
    if image:
        if config.containerizer == "docker":
            task.container.type = mesos_pb2.ContainerInfo.DOCKER
            task.container.docker.image = image
        elif config.containerizer == "mesos":
            task.container.type = mesos_pb2.ContainerInfo.MESOS
            task.container.mesos.image.type = mesos_pb2.Image.DOCKER
            task.container.mesos.image.docker.name = image
        else:
            raise FlagError(
                f"--containerizer must be 'mesos' or 'docker', not {config.containerizer!r}"
            )
    elif config.appc_image:
        task.container.type = mesos_pb2.ContainerInfo.MESOS
        task.container.mesos.image.type = mesos_pb2.Image.APPC
        task.container.mesos.image.appc.name = config.appc_image
    linux = task.container.linux_info
    for name, value, info in (
            ("effective_capabilities", config.effective_capabilities,
             linux.effective_capabilities),
            ("bounding_capabilities", config.bounding_capabilities, linux.bounding_capabilities)):
        wanted = capabilities.parse_flag(name, value)
        if wanted is not None:
            if not task.container.HasField("type"):
                task.container.type = mesos_pb2.ContainerInfo.MESOS
            info.SetInParent()
            info.capabilities.extend(
                capabilities.Capability.ValueType(c + capabilities.OFFSET) for c in sorted(wanted))
    return task, resources


def framework_info(config: ExecuteConfig) -> mesos_pb2.FrameworkInfo:
    info = mesos_pb2.FrameworkInfo(
        user=config.user or getpass.getuser(), name=config.framework_name,
        role=config.role, checkpoint=config.checkpoint,
    )
    capabilities = [Capability.RESERVATION_REFINEMENT, Capability.TASK_KILLING_STATE,
                    Capability.REVOCABLE_RESOURCES]
    if config.partition_aware:
        capabilities.append(Capability.PARTITION_AWARE)
    for name in filter(None, (config.framework_capabilities or "").split(",")):
        if name.strip() != "GPU_RESOURCES":
            raise FlagError(f"--framework_capabilities: only GPU_RESOURCES is accepted, got {name}")
        capabilities.append(Capability.GPU_RESOURCES)
    for capability in capabilities:
        info.capabilities.add(type=capability)
    if config.principal:
        info.principal = config.principal
    return info


def print_update(status: mesos_pb2.TaskStatus) -> None:
    print(f"Received status update {mesos_pb2.TaskState.Name(status.state)} "
          f"for task '{status.task_id.value}'")
    if status.message:
        print(f"  message: '{status.message}'")
    print(f"  source: {mesos_pb2.TaskStatus.Source.Name(status.source)}")
    if status.HasField("reason"):
        print(f"  reason: {mesos_pb2.TaskStatus.Reason.Name(status.reason)}")
    if status.HasField("healthy"):
        print(f"  healthy?: {status.healthy}")
    sys.stdout.flush()


async def run(config: ExecuteConfig, tls: TlsConfig = PLAIN) -> int:
    task, needed = build_task(config)
    content_type = PROTOBUF if config.content_type == "protobuf" else JSON
    launched = False
    Event = scheduler_pb2.Event
    detector = MasterDetector(config.master)  # host:port, or zk://... to find the leader
    try:
        master = await detector.leader()
    finally:
        await asyncio.to_thread(detector.close)
    async with SchedulerClient(master, framework_info(config), content_type, tls=tls) as client:
        async for event in client.events():
            if event.type == Event.SUBSCRIBED:
                print(f"Subscribed with ID {client.framework_id}", flush=True)
            elif event.type == Event.OFFERS:
                decline = []
                for offer in event.offers.offers:
                    offered = Resources.from_proto(offer.resources)
                    if not launched and offered.unreserved().contains(needed):
                        task.agent_id.CopyFrom(offer.agent_id)
                        await client.accept([offer.id.value], [task])
                        launched = True
                        print(f"Submitted task '{task.name}' to agent "
                              f"'{offer.agent_id.value}'", flush=True)
                        if config.kill_after:
                            asyncio.get_running_loop().call_later(
                                config.kill_after,
                                lambda: asyncio.ensure_future(client.kill(task.task_id.value)),
                            )
                    else:
                        decline.append(offer.id.value)
                if decline:
                    await client.decline(decline)
            elif event.type == Event.UPDATE:
                status = event.update.status
                print_update(status)
                await client.acknowledge(status)
                if status.task_id.value == task.task_id.value and status.state in TERMINAL_STATES:
                    await client.teardown()
                    return 0 if status.state == mesos_pb2.TASK_FINISHED else 1
            elif event.type == Event.ERROR:
                print(f"Received an ERROR event: {event.error.message}", file=sys.stderr)
                return 1
    print("Disconnected from the master", file=sys.stderr)
    return 1


def _main() -> int:
    config = flags.load(ExecuteConfig, sys.argv[1:], os.environ)
    if not config.master:
        raise FlagError("--master is required")
    try:
        return asyncio.run(run(config, from_env(os.environ)))
    except (RuntimeErrorBase, OSError) as exc:
        if isinstance(exc, FlagError):
            raise
        print(f"mesos-execute: {exc}", file=sys.stderr)
        return 1


def main() -> None:
    flags.run_cli(_main)
