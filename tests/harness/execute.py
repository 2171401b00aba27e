"""``mesos-execute`` against a test cluster, as users run it, and what its output and the mount
table say afterwards."""

from __future__ import annotations

import os
import subprocess

from tests.harness.cluster import VENV_BIN, Cluster


def execute(cluster: Cluster, *args: str, timeout: float = 120
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [os.path.join(VENV_BIN, "mesos-execute"), f"--master={cluster.master}", *args],
        capture_output=True, text=True, timeout=timeout, check=False)


def states(output: str, task: str) -> list[str]:
    """The states ``mesos-execute`` printed for ``task``, in order."""
    return [line.split()[3] for line in output.splitlines()
            if line.startswith("Received status update") and f"'{task}'" in line]


def mounts_under(path: str) -> list[str]:
    with open("/proc/self/mountinfo") as mountinfo:
        return [line.split()[4] for line in mountinfo if line.split()[4].startswith(path)]
