"""The Mesos containerizer as it stands today: executors as host processes (posix launcher).

Isolators, images and the linux launcher are separate open issues; they plug in here.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Collection

from agent_runtime.containerizer.containerizer import ContainerConfig
from agent_runtime.containerizer.launcher import PosixLauncher, Process
from agent_runtime.proto import mesos_pb2

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
    def __init__(self, launcher: PosixLauncher) -> None:
        self.launcher = launcher

    async def recover(self, known: Collection[str]) -> None:
        # Executors are plain processes in their own sessions; without checkpoints (an open
        # issue) there is no record of them to adopt or reap.
        return None

    async def launch(self, config: ContainerConfig) -> Process:
        process = await self.launcher.launch(
            executor_argv(config.executor_info, config.command_executor),
            config.environment, config.directory,
            os.path.join(config.directory, "stdout"), os.path.join(config.directory, "stderr"),
        )
        config.forked(process)
        return process

    async def destroy(self, container_id: str, process: Process, grace: float) -> None:
        await self.launcher.destroy(process, grace)

    async def cleanup(self, container_id: str) -> None:
        return None

    async def usage(self, container_id: str) -> mesos_pb2.ResourceStatistics | None:
        return None

    async def close(self) -> None:
        return None
