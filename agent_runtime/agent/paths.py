"""The agent's disk layout; the only module that knows where things live under ``--work_dir``.

::

    <work_dir>/
      slaves/<agent_id>/frameworks/<framework_id>/executors/<executor_id>/runs/
        latest -> <container_id>
        <container_id>/            the sandbox: stdout, stderr, the task's files
      meta/boot_id                  the boot the checkpoints were written in
      meta/executor_secret_key      signs executor tokens (made once, mode 0600)
      meta/slaves/latest            id of the agent that last ran here
      meta/slaves/<agent_id>/slave.info
      meta/slaves/<agent_id>/frameworks/<fid>/framework.info
      meta/slaves/<agent_id>/frameworks/<fid>/executors/<eid>/executor.info
      meta/.../executors/<eid>/executor.kind           COMMAND, DOCKER or CUSTOM
      meta/.../executors/<eid>/runs/latest            the current run's container id
      meta/.../executors/<eid>/runs/<cid>/pids/forked.pid   "<pid> <start, s after boot>"
      meta/.../executors/<eid>/runs/<cid>/executor.sentinel  (the run is over)
      meta/.../executors/<eid>/runs/<cid>/tasks/<tid>/{task.info,task.updates}

Every ID that becomes a component here passes ``agent_runtime.ids.check_id`` or the function
raises ``InvalidId``: callers validate first (a bad task fails with TASK_ERROR), this is the
backstop that keeps an ID like ``..`` or ``/etc`` from ever naming a path outside ``work_dir``.
"""

from __future__ import annotations

import os

from agent_runtime.ids import check_id


def sandbox(work_dir: str, agent_id: str, framework_id: str, executor_id: str,
            container_id: str) -> str:
    return os.path.join(executor_runs(work_dir, agent_id, framework_id, executor_id),
                        check_id(container_id, "Container ID"))


def executor_runs(work_dir: str, agent_id: str, framework_id: str, executor_id: str) -> str:
    return os.path.join(work_dir, "slaves", check_id(agent_id, "Agent ID"), "frameworks",
                        check_id(framework_id, "Framework ID"), "executors",
                        check_id(executor_id, "Executor ID"), "runs")


# How many components a sandbox lies below ``slaves/``: <agent_id>, frameworks, <framework_id>,
# executors, <executor_id>, runs, <container_id>.
SANDBOX_DEPTH = 7


def slaves_root(work_dir: str) -> str:
    return os.path.join(work_dir, "slaves")


def meta_agent(work_dir: str, agent_id: str) -> str:
    return os.path.join(work_dir, "meta", "slaves", check_id(agent_id, "Agent ID"))


def executor_secret_key(work_dir: str) -> str:
    return os.path.join(work_dir, "meta", "executor_secret_key")


def meta_latest(work_dir: str) -> str:
    return os.path.join(work_dir, "meta", "slaves", "latest")


def meta_boot_id(work_dir: str) -> str:
    return os.path.join(work_dir, "meta", "boot_id")


def meta_framework(work_dir: str, agent_id: str, framework_id: str) -> str:
    return os.path.join(meta_agent(work_dir, agent_id), "frameworks",
                        check_id(framework_id, "Framework ID"))


def meta_executor(work_dir: str, agent_id: str, framework_id: str, executor_id: str) -> str:
    return os.path.join(meta_framework(work_dir, agent_id, framework_id), "executors",
                        check_id(executor_id, "Executor ID"))


def meta_run(work_dir: str, agent_id: str, framework_id: str, executor_id: str,
             container_id: str) -> str:
    return os.path.join(meta_executor(work_dir, agent_id, framework_id, executor_id), "runs",
                        check_id(container_id, "Container ID"))


def meta_task(work_dir: str, agent_id: str, framework_id: str, executor_id: str,
              container_id: str, task_id: str) -> str:
    return os.path.join(meta_run(work_dir, agent_id, framework_id, executor_id, container_id),
                        "tasks", check_id(task_id, "Task ID"))

