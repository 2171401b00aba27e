"""Each task of a task group as a nested container, on a real master and agent with
``--isolation=cgroups/cpu,cgroups/mem`` on this machine's cgroup v1 hierarchies: its own cgroups
under its executor's container, its own limits with ``share_cgroups`` false, a later group
growing the container, our failure policy label, and a group that survives an agent restart.
One cluster serves the module (each test ends its framework).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

from agent_runtime.proto import mesos_pb2, scheduler_pb2
from agent_runtime.scheduler.client import SchedulerClient
from tests.harness.cgroups import HIERARCHY, cgroup_root, containers
from tests.harness.cluster import Cluster, agent_state, get_json, running_cluster
from tests.harness.framework import TestFramework, command_task, framework_info, terminal
from tests.harness.wait import until

pytestmark = pytest.mark.cgroups
Call = scheduler_pb2.Call
Operation = mesos_pb2.Offer.Operation
Status = mesos_pb2.TaskStatus
MB = 1024 * 1024
POLICY = "agent_runtime.task_group.failure_policy"


@pytest.fixture(scope="module")
def root() -> Iterator[str]:
    yield from cgroup_root()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, root: str) -> Iterator[Cluster]:
    flags = ["--isolation=cgroups/cpu,cgroups/mem", f"--cgroups_root={root}"]
    with running_cluster(str(tmp_path_factory.mktemp("nested")), agent_flags=flags) as running:
        yield running


def _read(controller: str, *path: str) -> str:
    with open(os.path.join(HIERARCHY, controller, *path)) as file:
        return file.read().strip()


def _group(offer: mesos_pb2.Offer, tasks: list[mesos_pb2.TaskInfo]) -> Call:
    call = Call(type=Call.ACCEPT)
    call.accept.offer_ids.add().CopyFrom(offer.id)
    call.accept.filters.refuse_seconds = 0
    launch = call.accept.operations.add(type=Operation.LAUNCH_GROUP).launch_group
    launch.executor.type = mesos_pb2.ExecutorInfo.DEFAULT
    launch.executor.executor_id.value = "pod"
    for name, value in (("cpus", 0.1), ("mem", 32.0)):
        launch.executor.resources.add(name=name, type=mesos_pb2.Value.SCALAR).scalar.value = value
    launch.task_group.tasks.extend(tasks)
    return call


def _task(offer: mesos_pb2.Offer, task_id: str, command: str, cpus: float, mem: float,
          share: bool = True, policy: str | None = None) -> mesos_pb2.TaskInfo:
    task = command_task(offer, command, task_id, cpus=cpus, mem=mem)
    task.container.type = mesos_pb2.ContainerInfo.MESOS
    if not share:
        task.container.linux_info.share_cgroups = False
    if policy is not None:
        task.labels.labels.add(key=POLICY, value=policy)
    return task


def _commands(root: str, container: str, task_id: str) -> list[str]:
    """The commands of the processes in a task's own memory cgroup."""
    procs = _read("memory", root, container, f"task-{task_id}", "cgroup.procs").split()
    names = []
    for pid in procs:
        try:
            names.append(" ".join(psutil.Process(int(pid)).cmdline()))
        except psutil.Error:
            continue
    return names


async def _running(framework: TestFramework, *task_ids: str) -> None:
    for task_id in task_ids:
        await framework.update(task_id, mesos_pb2.TASK_STARTING)
        await framework.update(task_id, mesos_pb2.TASK_RUNNING)


def _master_states(cluster: Cluster) -> dict[str, str]:
    tasks = get_json(f"{cluster.master_url}/tasks")["tasks"]
    return {task["id"]: task["state"] for task in tasks}


async def test_each_task_runs_in_cgroups_of_its_own_and_a_continue_task_spares_its_group(
        cluster: Cluster, root: str) -> None:
    async with SchedulerClient(cluster.master, framework_info()) as client:
        framework = TestFramework(client, acknowledge_all=True)
        await framework.start()
        (offer,) = await framework.offers()
        await client.call(_group(offer, [
            _task(offer, "shared", "sleep 301", cpus=0.2, mem=32),
            _task(offer, "own", "sleep 302", cpus=0.3, mem=48, share=False)]))
        await _running(framework, "shared", "own")
        (container,) = containers(root)
        # The executor's 32 MB and both tasks' bound the group as a sum.
        assert _read("memory", root, container, "memory.limit_in_bytes") == str(112 * MB)
        assert _read("cpu", root, container, "cpu.shares") == str(int(1024 * 0.6))
        await until(lambda: any("sleep 301" in c for c in _commands(root, container, "shared")),
                    what="the task in its own cgroup")
        await until(lambda: any("sleep 302" in c for c in _commands(root, container, "own")),
                    what="the other task in its own cgroup")
        executor_pids = _read("memory", root, container, "cgroup.procs").split()
        assert executor_pids and not any(
            "sleep" in " ".join(psutil.Process(int(p)).cmdline()) for p in executor_pids)
        # share_cgroups false: a limit of its own; shared: none but the container's.
        assert _read("memory", root, container, "task-own", "memory.limit_in_bytes") == \
            str(48 * MB)
        assert int(_read("memory", root, container, "task-shared",
                         "memory.limit_in_bytes")) > 1 << 40
        assert _read("cpu", root, container, "task-shared", "cpu.shares") == str(int(1024 * 0.2))
        assert int(_read("memory", root, container, "task-own", "memory.usage_in_bytes")) > 0

        # A later group in the same executor grows its container; its CONTINUE task fails
        # alone.
        (offer,) = await framework.offers()
        await client.call(_group(offer, [_task(offer, "helper", "sleep 0.5; exit 3", cpus=0.1,
                                               mem=16, policy="CONTINUE")]))
        await _running(framework, "helper")
        assert _read("memory", root, container, "memory.limit_in_bytes") == str(128 * MB)
        assert (await terminal(framework, "helper")).state == mesos_pb2.TASK_FAILED
        await asyncio.sleep(0.5)
        states = _master_states(cluster)
        assert states["shared"] == states["own"] == "TASK_RUNNING", states

        # A KILL of a KILL_GROUP task still ends its own group.
        await client.kill("shared")
        for task_id in ("shared", "own"):
            assert (await terminal(framework, task_id)).state == mesos_pb2.TASK_KILLED
        # The executor leaves; its container's cgroups go, nested ones first.
        await until(lambda: not containers(root), timeout=20,
                    what="the container's cgroups removed")
        await client.call(Call(type=Call.TEARDOWN))
        await framework.stop()


async def test_an_unknown_failure_policy_is_refused_by_name(cluster: Cluster) -> None:
    async with SchedulerClient(cluster.master, framework_info()) as client:
        framework = TestFramework(client, acknowledge_all=True)
        await framework.start()
        (offer,) = await framework.offers()
        await client.call(_group(offer, [_task(offer, "x", "true", 0.1, 16, policy="RESTART"),
                                         _task(offer, "y", "true", 0.1, 16)]))
        for task_id in ("x", "y"):
            status = await framework.update(task_id)
            assert status.state == mesos_pb2.TASK_ERROR
            assert status.reason == Status.REASON_TASK_GROUP_INVALID
            assert POLICY in status.message and "CONTINUE" in status.message
        await client.call(Call(type=Call.TEARDOWN))
        await framework.stop()


async def _fresh_offer(framework: TestFramework) -> mesos_pb2.Offer:
    """An offer not rescinded (the agent's restart rescinded those made before it)."""
    while True:
        (offer,) = await framework.offers()
        rescinded = {e.rescind.offer_id.value for e in framework.events
                     if e.type == scheduler_pb2.Event.RESCIND}
        if offer.id.value not in rescinded:
            return offer


def _executors(cluster: Cluster) -> list[dict[str, Any]]:
    try:
        state = agent_state(cluster)
    except OSError:
        return []  # the restarted agent does not answer yet
    return [e for f in state.get("frameworks", []) for e in f["executors"]]


async def test_a_group_survives_an_agent_restart_and_stays_killable(
        cluster: Cluster, root: str) -> None:
    async with SchedulerClient(cluster.master, framework_info(checkpoint=True)) as client:
        framework = TestFramework(client, acknowledge_all=True)
        await framework.start()
        (offer,) = await framework.offers()
        await client.call(_group(offer, [_task(offer, "web", "sleep 303", 0.1, 16),
                                         _task(offer, "side", "sleep 304", 0.1, 16)]))
        await _running(framework, "web", "side")
        (container,) = containers(root)

        cluster.kill("agent0", signal.SIGKILL)
        cluster.start_agent(0)
        await asyncio.to_thread(cluster.wait_agents, 1)
        await until(lambda: _executors(cluster), timeout=20,
                    what="the default executor to re-subscribe")
        (executor,) = _executors(cluster)
        assert sorted((t["id"], t["state"]) for t in executor["tasks"]) == [
            ("side", "TASK_RUNNING"), ("web", "TASK_RUNNING")]
        assert containers(root) == [container]  # recovery kept its cgroups, nested ones too
        assert any("sleep 303" in c for c in _commands(root, container, "web"))

        # The adopted executor takes a new group, nested in the same container.
        offer = await _fresh_offer(framework)
        await client.call(_group(offer, [_task(offer, "late", "sleep 305", 0.1, 16)]))
        await _running(framework, "late")
        await until(lambda: any("sleep 305" in c for c in _commands(root, container, "late")),
                    what="the late task in its own cgroup")

        await client.kill("web")
        for task_id in ("web", "side"):
            assert (await terminal(framework, task_id)).state == mesos_pb2.TASK_KILLED
        await client.kill("late")
        assert (await terminal(framework, "late")).state == mesos_pb2.TASK_KILLED
        await until(lambda: not containers(root), timeout=20,
                    what="the container's cgroups removed")
        await client.call(Call(type=Call.TEARDOWN))
        await framework.stop()
