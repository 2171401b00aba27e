"""The agent's ``/metrics/snapshot``: Mesos's ``slave/*`` keys, from the executor table.

Mesos keeps the task and executor gauges as the states of what the agent holds now, and the
terminal task counts as counters bumped on each terminal update. We count both from the records
(launched, completed, and the completed executors' tasks), which is what those counters add up
to while the records are kept; Mesos's web UI reads these keys for an agent's task counts.
"""

from __future__ import annotations

from collections.abc import Iterator

from agent_runtime.agent.agent import Agent
from agent_runtime.agent.model import Executor, ExecutorState
from agent_runtime.agent.state_json import allocated
from agent_runtime.proto import mesos_pb2
from agent_runtime.resources import Resources

# Gauges: what is in these states now.
LIVE_STATES = {
    mesos_pb2.TASK_STAGING: "staging",
    mesos_pb2.TASK_STARTING: "starting",
    mesos_pb2.TASK_RUNNING: "running",
    mesos_pb2.TASK_KILLING: "killing",
}
# Counters: tasks that ended so.
ENDED_STATES = {
    mesos_pb2.TASK_FINISHED: "finished",
    mesos_pb2.TASK_FAILED: "failed",
    mesos_pb2.TASK_KILLED: "killed",
    mesos_pb2.TASK_LOST: "lost",
    mesos_pb2.TASK_GONE: "gone",
    mesos_pb2.TASK_GONE_BY_OPERATOR: "gone_by_operator",
}
RESOURCES = ("cpus", "mem", "disk", "gpus")


def _all_executors(agent: Agent) -> Iterator[Executor]:
    for framework in [*agent.table.frameworks(), *agent.table.completed_frameworks()]:
        yield from framework.executors.values()
        yield from framework.completed_executors


def task_counts(agent: Agent) -> dict[str, float]:
    counts = {f"slave/tasks_{name}": 0.0 for name in [*LIVE_STATES.values(),
                                                     *ENDED_STATES.values()]}
    for executor in _all_executors(agent):
        counts["slave/tasks_staging"] += len(executor.queued)
        for task in [*executor.launched.values(), *executor.completed]:
            name = LIVE_STATES.get(task.state) or ENDED_STATES.get(task.state)
            if name is not None:
                counts[f"slave/tasks_{name}"] += 1
    return counts


def snapshot(agent: Agent) -> dict[str, float]:
    states = {state: 0.0 for state in ExecutorState}
    for executor in _all_executors(agent):
        states[executor.state] += 1
    used = Resources()
    for executor in agent.table.executors():
        used = used + allocated(executor)
    data: dict[str, float] = {
        "slave/registered": 1.0 if agent.info.HasField("id") else 0.0,
        "slave/uptime_secs": agent.clock() - agent.start_time,
        "slave/frameworks_active": float(len(agent.table.frameworks())),
        "slave/executors_registering": states[ExecutorState.REGISTERING],
        "slave/executors_running": states[ExecutorState.RUNNING],
        "slave/executors_terminating": states[ExecutorState.TERMINATING],
        "slave/executors_terminated": states[ExecutorState.TERMINATED],
        **task_counts(agent),
    }
    for name in RESOURCES:
        total, taken = agent.resources.scalar(name), used.scalar(name)
        data[f"slave/{name}_total"] = total
        data[f"slave/{name}_used"] = taken
        data[f"slave/{name}_percent"] = taken / total if total else 0.0
    return data


__all__ = ["ENDED_STATES", "LIVE_STATES", "snapshot", "task_counts"]
