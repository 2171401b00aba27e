"""A task of a task group with an image of its own (``ContainerInfo.mesos.image``), beside one
without, in one default executor: real master and agent with ``--image_providers=docker`` and
the offline busybox image, real mounts and namespaces (root needed)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from agent_runtime.proto import mesos_pb2, scheduler_pb2
from agent_runtime.scheduler.client import SchedulerClient
from tests.harness.cluster import Cluster, agent_state
from tests.harness.execute import mounts_under
from tests.harness.framework import TestFramework, command_task, framework_info, terminal
from tests.harness.wait import until

pytestmark = pytest.mark.cgroups  # root, mounts and namespaces
Call = scheduler_pb2.Call
Operation = mesos_pb2.Offer.Operation


@pytest.fixture
def cluster(tmp_path_factory: pytest.TempPathFactory, image_task_images: str
            ) -> Iterator[Cluster]:
    work = str(tmp_path_factory.mktemp("group-images"))
    flags = ["--containerizers=mesos", "--image_providers=docker",
             "--isolation=filesystem/linux,docker/runtime",
             f"--docker_registry={image_task_images}", f"--docker_store_dir={work}/store"]
    cluster = Cluster(work, agent_flags=flags)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
        for mount in reversed(mounts_under(work)):
            subprocess.run(["umount", "-l", mount], check=False)


def _read(path: str) -> str:
    with open(path) as file:
        return file.read()


async def test_a_group_task_runs_in_its_own_image_with_its_sandbox_mounted(
        cluster: Cluster) -> None:
    async with SchedulerClient(cluster.master, framework_info()) as client:
        framework = TestFramework(client, acknowledge_all=True)
        await framework.start()
        (offer,) = await framework.offers()
        call = Call(type=Call.ACCEPT)
        call.accept.offer_ids.add().CopyFrom(offer.id)
        launch = call.accept.operations.add(type=Operation.LAUNCH_GROUP).launch_group
        launch.executor.type = mesos_pb2.ExecutorInfo.DEFAULT
        launch.executor.executor_id.value = "pod"
        boxed = command_task(offer, "[ -x /bin/busybox ] && [ ! -e /work ] && "
                             "echo inside > /mnt/mesos/sandbox/where; sleep 300", "boxed")
        boxed.container.type = mesos_pb2.ContainerInfo.MESOS
        boxed.container.mesos.image.type = mesos_pb2.Image.DOCKER
        boxed.container.mesos.image.docker.name = "busybox"
        # A framework's own launch info is never obeyed: the agent drops it.
        boxed.command.environment.variables.add(name="MESOS_TASK_LAUNCH_INFO",
                                                value='{"rootfs": "/"}')
        host = command_task(offer, "echo host > where; sleep 300", "host")
        launch.task_group.tasks.extend([boxed, host])
        await client.call(call)
        for task_id in ("boxed", "host"):
            await framework.update(task_id, mesos_pb2.TASK_RUNNING, timeout=60)
        (executor,) = agent_state(cluster)["frameworks"][0]["executors"]
        sandbox = executor["directory"]
        for task_id, text in (("boxed", "inside\n"), ("host", "host\n")):
            where = os.path.join(sandbox, "tasks", task_id, "where")
            await until(lambda: os.path.exists(where) and _read(where), timeout=20,  # noqa: B023
                        what=f"{task_id}'s mark in its sandbox")
            assert _read(where) == text
        await client.kill("boxed")
        for task_id in ("boxed", "host"):
            assert (await terminal(framework, task_id)).state == mesos_pb2.TASK_KILLED
        # The task's rootfs is its container's: gone with it.
        await until(lambda: not mounts_under(os.path.join(cluster.work_dir, "agent0")),
                    timeout=20, what="the task's rootfs unmounted")
        await client.call(Call(type=Call.TEARDOWN))
        await framework.stop()
