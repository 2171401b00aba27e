"""How a custom executor is started, on a real agent:

- ``namespaces/uts``: it gets a UTS namespace of its own named after its container (or
  ``ContainerInfo.hostname``), as a command executor does; before, it was exec'd in a new
  namespace that still carried the host's name.
- Its framework's variables cannot replace the agent's word: ``MESOS_ROOTFS_LAUNCH`` in
  ``ExecutorInfo.command.environment`` used to be obeyed by the launch helper (which runs as
  the agent's user, before confinement) in place of the agent's own launch.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_runtime.proto import mesos_pb2
from tests.harness.cluster import Cluster, agent_state, running_cluster
from tests.harness.framework import framework_info, subscribed
from tests.harness.needs import require_root
from tests.harness.wait import until

pytestmark = pytest.mark.cgroups  # namespaces need root, as the cgroup tests do
# What the executor (a shell: it never subscribes; the test only reads what it wrote) reports.
SCRIPT = ("hostname > name.txt; readlink /proc/self/ns/uts > ns.txt; hostname renamed; "
          "hostname > renamed.txt; sleep 300")


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    require_root("namespaces/uts")
    with tempfile.TemporaryDirectory() as work_dir, running_cluster(
            work_dir, agent_flags=["--isolation=namespaces/uts"]) as running:
        yield running


def _task(offer: mesos_pb2.Offer, hostname: str | None,
          variables: dict[str, str] | None = None) -> mesos_pb2.TaskInfo:
    task = mesos_pb2.TaskInfo(name="uts")
    task.task_id.value = "uts"
    task.agent_id.CopyFrom(offer.agent_id)
    executor = task.executor
    executor.type = mesos_pb2.ExecutorInfo.CUSTOM
    executor.executor_id.value = "uts-executor"
    executor.command.value = SCRIPT
    for variable, text in (variables or {}).items():
        executor.command.environment.variables.add(name=variable, value=text)
    if hostname is not None:
        executor.container.type = mesos_pb2.ContainerInfo.MESOS
        executor.container.hostname = hostname
    for message in (task, executor):
        for name, value in (("cpus", 0.1), ("mem", 32.0)):
            resource = message.resources.add(name=name, type=mesos_pb2.Value.SCALAR)
            resource.scalar.value = value
    return task


def _sandbox(cluster: Cluster) -> str | None:
    for framework in agent_state(cluster)["frameworks"]:
        for executor in framework["executors"]:
            if executor["id"] == "uts-executor":
                return str(executor["directory"])
    return None


@pytest.mark.parametrize("hostname", [None, "web-1"])
async def test_a_custom_executor_gets_its_own_named_uts_namespace(
        cluster: Cluster, hostname: str | None) -> None:
    async with subscribed(cluster.master, framework_info()) as framework:
        (offer,) = await framework.offers()
        await framework.client.accept([offer.id.value], [_task(offer, hostname)])
        await until(lambda: _sandbox(cluster), timeout=60, what="the sandbox")
        sandbox = _sandbox(cluster)
        assert sandbox is not None
        renamed = os.path.join(sandbox, "renamed.txt")
        await until(lambda: os.path.exists(renamed) and os.path.getsize(renamed),
                    timeout=60, what="the executor's report")
        with open(os.path.join(sandbox, "name.txt")) as handle:
            name = handle.read().strip()
        with open(os.path.join(sandbox, "ns.txt")) as handle:
            namespace = handle.read().strip()
        if hostname is None:  # the container's id, as for command executors
            assert name != os.uname().nodename and name in sandbox
        else:
            assert name == hostname
        assert namespace != os.readlink("/proc/self/ns/uts")
        assert os.uname().nodename != "renamed"  # its rename stayed in its namespace
        await framework.client.teardown()


async def test_a_framework_cannot_hand_the_launch_helper_its_own_launch(
        cluster: Cluster, tmp_path: Path) -> None:
    marker = tmp_path / "obeyed"
    forged = json.dumps({"argv": ["/bin/sh", "-c", f"touch {marker}; sleep 300"],
                         "security": {}})
    async with subscribed(cluster.master, framework_info()) as framework:
        (offer,) = await framework.offers()
        task = _task(offer, None, {"MESOS_ROOTFS_LAUNCH": forged,
                                   "MESOS_EXECUTOR_AUTHENTICATION_TOKEN": "forged"})
        task.executor.command.value = f"env > env.txt; {SCRIPT}"
        await framework.client.accept([offer.id.value], [task])
        await until(lambda: _sandbox(cluster), timeout=60, what="the sandbox")
        sandbox = _sandbox(cluster)
        assert sandbox is not None
        renamed = os.path.join(sandbox, "renamed.txt")
        await until(lambda: os.path.exists(renamed) and os.path.getsize(renamed),
                    timeout=60, what="the agent's own launch to run")
        assert not marker.exists()
        with open(os.path.join(sandbox, "env.txt")) as handle:
            environment = handle.read()
        assert "MESOS_ROOTFS_LAUNCH" not in environment
        assert "MESOS_EXECUTOR_AUTHENTICATION_TOKEN=forged" not in environment
        await framework.client.teardown()
