"""Usage of a container with no cgroups isolator (``posix/cpu``, ``posix/mem``): the sum over
the executor's process tree, as Mesos's posix isolators compute it.

Cpu time adds each live process's own time to that of its children it has already waited for,
so a finished task's time stays counted (as long as its parent lives) and nothing twice. RSS
counts a page shared by two processes twice, as Mesos does. A process that exits during the walk
is skipped.
"""

from __future__ import annotations

import typing
from typing import Literal

import psutil

from agent_runtime.containerizer.launcher import is_same_process
from agent_runtime.proto import mesos_pb2

# Fields the process tree can tell; the containerizer fills in those no isolator reported.
Field = Literal["cpus_user_time_secs", "cpus_system_time_secs", "mem_rss_bytes", "processes",
                "threads"]
FIELDS: tuple[Field, ...] = typing.get_args(Field)


def process_tree_usage(pid: int, start_time: float) -> mesos_pb2.ResourceStatistics | None:
    """Blocking (it reads /proc for every process on the host to find the descendants): run it
    off the event loop. None when ``pid`` is gone, or is another process (start time)."""
    try:
        if start_time and not is_same_process(pid, start_time):
            return None  # the pid was recycled: not our executor
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    out = mesos_pb2.ResourceStatistics(cpus_user_time_secs=0.0, cpus_system_time_secs=0.0,
                                       mem_rss_bytes=0, processes=0, threads=0)
    for process in tree:
        try:
            with process.oneshot():
                times = process.cpu_times()
                rss = process.memory_info().rss
                threads = process.num_threads()
        except psutil.Error:
            continue
        out.cpus_user_time_secs += times.user + times.children_user
        out.cpus_system_time_secs += times.system + times.children_system
        out.mem_rss_bytes += rss
        out.processes += 1
        out.threads += threads
    return out


def fill_missing(into: mesos_pb2.ResourceStatistics,
                 source: mesos_pb2.ResourceStatistics) -> None:
    """Copy what ``into`` lacks of the process tree's fields: an isolator's figures win."""
    for name in FIELDS:
        if source.HasField(name) and not into.HasField(name):
            setattr(into, name, getattr(source, name))
