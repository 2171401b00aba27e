#!/usr/bin/env python3
"""Check ``gpu/nvidia`` on a machine with a real NVIDIA GPU (the unit tests use a fake NVML).

Run as root from the repository root, on a host with the NVIDIA driver and the cgroup v1
``devices`` controller mounted read-write::

    sudo .venv/bin/python scripts/gpu_check.py [--gpus 1] [--cgroups_hierarchy /sys/fs/cgroup]

It discovers the GPUs through the real NVML, builds the agent's isolators for
``--isolation=cgroups/devices,gpu/nvidia`` exactly as the agent does, prepares a container asking
for ``--gpus`` GPUs, starts a process in it through the real launcher, and has that process open
every ``/dev/nvidia*`` node (and run ``nvidia-smi -L`` when there is one). It prints each step.
Exit status: 0 when the process could open exactly its own GPUs (plus the control devices) and
got EPERM for every other GPU; 1 when it could not; 2 when this host cannot run the check.

On a host whose /sys/fs/cgroup is unified (v2), a v1 devices hierarchy can be mounted beside it
for the check (the devices controller is not used by v2)::

    mkdir -p /tmp/cgv1/devices && mount -t cgroup -o devices devices /tmp/cgv1/devices
    sudo .venv/bin/python scripts/gpu_check.py --cgroups_hierarchy /tmp/cgv1
    umount /tmp/cgv1/devices
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from agent_runtime.agent.composition import build_isolators
from agent_runtime.agent.config import AgentConfig
from agent_runtime.containerizer.containerizer import ContainerConfig
from agent_runtime.containerizer.launcher import PosixLauncher
from agent_runtime.errors import RuntimeErrorBase
from agent_runtime.proto import mesos_pb2
from agent_runtime.resources import Resources

# Run inside the container: opens each path read-write, prints "path ok|ERRNO", then nvidia-smi.
PROBE = """
import errno, os, shutil, subprocess, sys
for path in sys.argv[1:]:
    try:
        os.close(os.open(path, os.O_RDWR))
        print(path, "ok", flush=True)
    except OSError as exc:
        print(path, errno.errorcode.get(exc.errno, exc.errno), flush=True)
if shutil.which("nvidia-smi"):
    result = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    print("nvidia-smi -L (exit %d):" % result.returncode, flush=True)
    print(result.stdout + result.stderr, flush=True)
"""


def _container(container_id: str, gpus: int, directory: str) -> ContainerConfig:
    info = mesos_pb2.ExecutorInfo()
    info.executor_id.value = container_id
    resources = Resources.scalar_of("cpus", 0.1) + Resources.scalar_of("gpus", gpus)
    info.resources.extend(resources.to_proto())
    return ContainerConfig(container_id, "gpu-check", mesos_pb2.FrameworkInfo(), info, (), True,
                           directory, {})


async def check(gpus_wanted: int, hierarchy: str) -> int:
    # The module as the agent loads it (through the installed package).
    gpu_nvidia: Any = importlib.import_module("agent_runtime.isolators.gpu_nvidia")

    try:
        found = gpu_nvidia.discover_gpus()
    except RuntimeErrorBase as exc:
        print(f"cannot run the check here: {exc}")
        return 2
    print(f"NVML GPUs (index -> /dev/nvidia<minor>): {[(g.index, g.minor) for g in found]}")
    print(f"nvidia-uvm major: {gpu_nvidia.uvm_major()}")
    root = f"gpu-check-{uuid.uuid4().hex[:8]}"
    config = AgentConfig(isolation="cgroups/devices,gpu/nvidia", cgroups_root=root,
                         cgroups_hierarchy=hierarchy)
    try:
        isolators = build_isolators(config)
    except RuntimeErrorBase as exc:
        print(f"cannot run the check here: {exc}")
        _remove_root(hierarchy, root)
        return 2
    gpu: Any
    [gpu] = [isolator for isolator in isolators if isinstance(isolator, gpu_nvidia.GpuIsolator)]
    print(f"control device lines: {list(gpu.controls)}")
    if gpus_wanted > len(gpu.gpus):
        print(f"asked for {gpus_wanted} GPUs, the host has {len(gpu.gpus)}")
        _remove_root(hierarchy, root)
        return 2

    directory = tempfile.mkdtemp(prefix="gpu-check-")
    container_id = "check"
    environment: dict[str, str] = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    cgroup_procs: list[str] = []
    try:
        for isolator in isolators:
            info = await isolator.prepare(container_id, _container(container_id, gpus_wanted,
                                                                   directory))
            if info is not None:
                environment.update(info.environment)
                cgroup_procs.extend(info.cgroup_procs)
        mine = gpu.allocated(container_id)
        print(f"allocated: {[(g.index, g.minor) for g in mine]}; "
              f"environment: NVIDIA_VISIBLE_DEVICES={environment.get('NVIDIA_VISIBLE_DEVICES')}")
        listing = Path(hierarchy, "devices", root, container_id, "devices.list").read_text()
        print(f"devices.list of {root}/{container_id}:\n{listing}")

        nodes = sorted(str(path) for path in Path("/dev").glob("nvidia*") if path.is_char_device())
        process = await PosixLauncher().launch(
            [sys.executable, "-c", PROBE, *nodes], environment, directory,
            os.path.join(directory, "stdout"), os.path.join(directory, "stderr"),
            cgroup_procs=cgroup_procs)
        for isolator in isolators:
            await isolator.isolate(container_id, process.pid)
        status = await asyncio.wait_for(process.exited, 60)
        out = Path(directory, "stdout").read_text()
        print(f"process in the container (exit {status}):\n{out}")
        err = Path(directory, "stderr").read_text()
        if err:
            print(f"its stderr:\n{err}")

        results = dict(line.split(" ", 1) for line in out.splitlines()
                       if line.startswith("/dev/nvidia") and " " in line)
        own = {f"/dev/nvidia{g.minor}" for g in mine}
        others = {f"/dev/nvidia{g.minor}" for g in gpu.gpus} - own
        problems = [f"{path}: {results.get(path)} (expected ok)" for path in sorted(own)
                    if results.get(path) != "ok"]
        problems += [f"{path}: {results.get(path)} (expected EPERM)" for path in sorted(others)
                     if results.get(path) != "EPERM"]
        # The control device comes with the first GPU: a container without GPUs has no
        # NVIDIA device at all.
        control = "ok" if own else "EPERM"
        if os.path.exists("/dev/nvidiactl") and results.get("/dev/nvidiactl") != control:
            problems.append(f"/dev/nvidiactl: {results.get('/dev/nvidiactl')} "
                            f"(expected {control})")
        print(f"major {gpu_nvidia.NVIDIA_MAJOR}: own GPUs {sorted(own)}, others {sorted(others)}")
        if problems:
            print("FAIL:\n  " + "\n  ".join(problems))
            return 1
        print(f"PASS: the container opens its own {len(own)} GPU(s) and none of the others")
        return 0
    finally:
        for isolator in reversed(isolators):
            await isolator.cleanup(container_id)
        _remove_root(hierarchy, root)
        shutil.rmtree(directory, ignore_errors=True)


def _remove_root(hierarchy: str, root: str) -> None:
    """Our --cgroups_root (cgroups/devices makes it at start), empty by now."""
    with contextlib.suppress(OSError):
        os.rmdir(os.path.join(hierarchy, "devices", root))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpus", type=int, default=1,
                        help="GPUs the container asks for (0: check that it gets none)")
    parser.add_argument("--cgroups_hierarchy", default="/sys/fs/cgroup")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root: the check writes to the devices cgroup")
        return 2
    return asyncio.run(check(args.gpus, args.cgroups_hierarchy))


if __name__ == "__main__":
    sys.exit(main())
