"""Whose sandbox a ``/files`` path is in: the object of Mesos's ``access_sandboxes`` ACL, the
user its executor runs as (``CommandInfo.user``, else its framework's ``FrameworkInfo.user``).

A path names its framework and executor (``.../frameworks/<fid>/executors/<eid>/...``, real
or virtual, see ``files.py``); both are looked up among the live and the completed ones. A path
whose executor is not known (gone, or made up) has no user: only rules for ANY user match it.
"""

from __future__ import annotations

from agent_runtime.agent import files
from agent_runtime.agent.executor_table import ExecutorTable
from agent_runtime.agent.model import Executor, FrameworkRecord
from agent_runtime.errors import RuntimeErrorBase


def _executor(record: FrameworkRecord, executor_id: str) -> Executor | None:
    found = record.executors.get(executor_id)
    if found is not None:
        return found
    return next((e for e in record.completed_executors if e.id == executor_id), None)


def sandbox_user(table: ExecutorTable, work_dir: str, agent_id: str, path: str) -> str | None:
    try:
        parts = files.components(work_dir, agent_id, path)
    except RuntimeErrorBase:
        return None  # the handler refuses the path itself, with its reason
    # <agent id>/frameworks/<fid>/executors/<eid>/...
    if len(parts) < 5 or parts[1] != "frameworks" or parts[3] != "executors":
        return None
    framework_id, executor_id = parts[2], parts[4]
    records = [*table.frameworks(), *table.completed_frameworks()]
    for record in records:
        if record.id != framework_id:
            continue
        executor = _executor(record, executor_id)
        if executor is not None:
            command = executor.info.command
            return command.user if command.HasField("user") and command.user else (
                record.info.user or None)
    return None
