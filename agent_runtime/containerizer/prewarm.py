"""Executors started ahead of need, so a launch does not pay for a Python start-up.

A docker executor starts while the engine creates and starts the container; on a small machine
the two compete for the CPU, and measured (two cores) the executor's ~40 ms of start-up
stretched the engine's create+start by 10 to 30 ms. So one executor is kept started and idle,
its modules imported, blocked on a read of its stdin. A launch hands it its environment and
sandbox as one JSON line, and it goes on as if it had just been started there (it moves its
stdout and stderr onto the sandbox's files). The next one is started ``REFILL_DELAY`` after the
container runs: at once, its start-up would compete with the TASK_RUNNING update on its way
through the executor, agent, master and scheduler. An idle executor exits when its stdin
closes, so an agent that dies leaves none behind; a burst of launches takes the idle one and
starts the rest afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Mapping, Sequence

from agent_runtime.containerizer.launcher import PosixLauncher, Process
from agent_runtime.errors import LaunchError

log = logging.getLogger(__name__)

PREWARMED_ENV = "MESOS_EXECUTOR_PREWARMED"  # tells the executor to wait for its hand-over
REFILL_DELAY = 0.1  # seconds


class PrewarmedExecutors:
    def __init__(self, launcher: PosixLauncher, argv: Sequence[str], env: Mapping[str, str],
                 size: int = 1) -> None:
        self.launcher = launcher
        self.argv = list(argv)
        self.env = {**env, PREWARMED_ENV: "1"}
        self.size = size
        self._idle: list[Process] = []
        self._starting: set[asyncio.Task[None]] = set()
        self._closed = False

    def take(self, env: Mapping[str, str], directory: str) -> Process | None:
        """An idle executor, now handed ``env`` and its sandbox; None when there is none."""
        while self._idle:
            process = self._idle.pop()
            if process.exited.done() or process.popen is None or process.popen.stdin is None:
                continue
            line = json.dumps({"environment": dict(env), "directory": directory}) + "\n"
            try:
                # One small write into an empty pipe buffer: it does not block.
                process.popen.stdin.write(line.encode())
                process.popen.stdin.close()
            except OSError:  # it died meanwhile
                continue
            return process
        return None

    def refill_later(self) -> None:
        asyncio.get_running_loop().call_later(REFILL_DELAY, self.refill)

    def refill(self) -> None:
        """Start executors in the background until ``size`` are idle or starting."""
        loop = asyncio.get_running_loop()
        while not self._closed and len(self._idle) + len(self._starting) < self.size:
            task = loop.create_task(self._start())
            self._starting.add(task)
            task.add_done_callback(self._starting.discard)

    async def _start(self) -> None:
        try:
            process = await self.launcher.launch(self.argv, self.env, "/", os.devnull,
                                                 os.devnull, stdin_pipe=True)
        except LaunchError as exc:
            log.warning("could not pre-start an executor: %s", exc)
            return
        if self._closed:
            await self._release(process)
        else:
            self._idle.append(process)

    @staticmethod
    async def _release(process: Process) -> None:
        # Closing stdin lets it exit on its own; the kill is for one that does not.
        if process.popen is not None and process.popen.stdin is not None:
            with contextlib.suppress(OSError):
                process.popen.stdin.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(process.exited), 1.0)
            return
        PosixLauncher.signal(process)

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        await asyncio.gather(*(self._release(process) for process in idle))
