"""Docker tasks for the docker containerizer's tests: agent flags, TaskInfos, and waiting for
their updates and for the engine to drop their containers."""

from __future__ import annotations

import time
from typing import Any

import docker

from agent_runtime.proto import mesos_pb2
from tests.harness.framework import TestFramework, command_task, terminal

__all__ = ["agent_flags", "containers_of", "docker_task", "launch", "terminal", "wait_gone"]


def agent_flags(images: str, containerizers: str = "mesos,docker") -> list[str]:
    return [f"--containerizers={containerizers}", f"--docker_registry={images}",
            "--resources=cpus:4;mem:4096;disk:4096;ports:[31000-32000]"]


def docker_task(offer: mesos_pb2.Offer, command: str | None, image: str = "busybox",
                mem: float = 64, **docker_fields: Any) -> mesos_pb2.TaskInfo:
    task = command_task(offer, command or "", mem=mem)
    if command is None:
        task.command.shell = False
        task.command.ClearField("value")
    task.container.type = mesos_pb2.ContainerInfo.DOCKER
    task.container.docker.image = image
    for key, value in docker_fields.items():
        setattr(task.container.docker, key, value)
    return task


async def launch(fw: TestFramework, task: mesos_pb2.TaskInfo, offer: mesos_pb2.Offer) -> str:
    await fw.client.accept([offer.id.value], [task], refuse_seconds=0)
    return str(task.task_id.value)


def containers_of(engine: docker.APIClient, task_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = engine.containers(
        all=True, filters={"label": f"mesos.task_id={task_id}"})
    return found


def wait_gone(engine: docker.APIClient, task_id: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while containers_of(engine, task_id):
        assert time.monotonic() < deadline, f"container of {task_id} was not removed"
        time.sleep(0.05)
