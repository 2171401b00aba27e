"""The Mesos containerizer: executors as host processes (posix launcher), isolated by the
isolators ``--isolation`` names (``isolation.py``).

Launch: every isolator's ``prepare`` in order, the launcher spawns with the merged result (the
executor joins its cgroups before it execs), ``isolate``, then ``watch``: a limitation destroys
the container and is kept for the agent to report. Cleanup runs the isolators in reverse.
Images and namespaces (the linux launcher) are open items of issue 3.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import sys
from collections.abc import Collection, Sequence

from agent_runtime.containerizer.containerizer import ContainerConfig
from agent_runtime.containerizer.isolator import Isolator, Limitation
from agent_runtime.containerizer.launcher import PosixLauncher, Process
from agent_runtime.proto import mesos_pb2

log = logging.getLogger(__name__)

# Found through the import system: the `executors/` folder is mapped to agent_runtime.executors.
_COMMAND_SPEC = importlib.util.find_spec("agent_runtime.executors.command")
assert _COMMAND_SPEC is not None and _COMMAND_SPEC.origin is not None
COMMAND_EXECUTOR: str = _COMMAND_SPEC.origin
# Imported rather than run as a script so its bytecode is cached; `-S` skips site-packages (the
# executor needs the standard library only), which keeps its start-up, i.e. launch latency, low.
_COMMAND_STUB = ("import sys; sys.path[0] = sys.argv[1]; import command; "
                 "sys.exit(command.main())")


def executor_argv(info: mesos_pb2.ExecutorInfo, command_executor: bool) -> list[str]:
    if command_executor:
        return [sys.executable, "-S", "-c", _COMMAND_STUB, os.path.dirname(COMMAND_EXECUTOR)]
    command = info.command
    if not command.HasField("shell") or command.shell:
        return ["/bin/sh", "-c", command.value]
    # shell=false: run `value` itself with `arguments` after argv[0], as execvp would.
    return [command.value, *list(command.arguments)[1:]]


class MesosContainerizer:
    def __init__(self, launcher: PosixLauncher, isolators: Sequence[Isolator] = ()) -> None:
        self.launcher = launcher
        self.isolators = tuple(isolators)
        self._processes: dict[str, Process] = {}
        self._limitations: dict[str, Limitation] = {}

    async def recover(self, known: Collection[str]) -> None:
        # Executors are plain processes in their own sessions, adopted by the agent from its
        # checkpoints; the isolators remove what they hold for any other container.
        for isolator in self.isolators:
            await isolator.recover(known)

    async def launch(self, config: ContainerConfig) -> Process:
        container_id = config.container_id
        environment = dict(config.environment)
        cgroup_procs: list[str] = []
        try:
            for isolator in self.isolators:
                info = await isolator.prepare(container_id, config)
                if info is not None:
                    environment.update(info.environment)
                    cgroup_procs.extend(info.cgroup_procs)
            process = await self.launcher.launch(
                executor_argv(config.executor_info, config.command_executor),
                environment, config.directory,
                os.path.join(config.directory, "stdout"), os.path.join(config.directory, "stderr"),
                cgroup_procs=cgroup_procs,
            )
        except BaseException:
            await self.cleanup(container_id)
            raise
        self._processes[container_id] = process
        config.forked(process)
        for isolator in self.isolators:
            await isolator.isolate(container_id, process.pid)
            watch = isolator.watch(container_id)
            if watch is not None:
                watch.add_done_callback(
                    lambda future: self._limited(container_id, future))
        return process

    def _limited(self, container_id: str, future: asyncio.Future[Limitation]) -> None:
        process = self._processes.get(container_id)
        if future.cancelled() or process is None or container_id in self._limitations:
            return
        limitation = future.result()
        log.warning("container %s: %s", container_id, limitation.message)
        self._limitations[container_id] = limitation
        asyncio.get_running_loop().create_task(self.destroy(container_id, process, 0.0))

    def limitation(self, container_id: str) -> Limitation | None:
        return self._limitations.get(container_id)

    async def destroy(self, container_id: str, process: Process, grace: float) -> None:
        await self.launcher.destroy(process, grace)

    async def cleanup(self, container_id: str) -> None:
        """Isolators in reverse order; each kills what is left in its cgroups first."""
        self._processes.pop(container_id, None)
        self._limitations.pop(container_id, None)
        for isolator in reversed(self.isolators):
            try:
                await isolator.cleanup(container_id)
            except Exception:
                log.exception("cleanup of container %s by %s failed", container_id,
                              type(isolator).__name__)

    async def usage(self, container_id: str) -> mesos_pb2.ResourceStatistics | None:
        return None

    async def close(self) -> None:
        return None
