"""The fork server: executors forked from the zygote, their exit statuses, and what happens when
the zygote itself dies. Real processes; the executors here have no agent to talk to, which is
enough to see them start, fail as the executor does, and end."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import AsyncIterator, Iterator

import psutil
import pytest

from agent_runtime.containerizer.forkserver import ForkServer
from agent_runtime.containerizer.launcher import PosixLauncher, is_same_process, start_time_of
from agent_runtime.errors import LaunchError


@pytest.fixture
def silent_agent() -> Iterator[dict[str, str]]:
    """An executor environment whose agent accepts connections and never answers: the
    executor waits on its subscription for as long as the test needs it."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield {"MESOS_AGENT_ENDPOINT": f"127.0.0.1:{listener.getsockname()[1]}",
               "MESOS_FRAMEWORK_ID": "f", "MESOS_EXECUTOR_ID": "e"}


@pytest.fixture
async def server() -> AsyncIterator[ForkServer]:
    fork_server = ForkServer(PosixLauncher())
    yield fork_server
    await fork_server.close()


async def test_an_executor_is_forked_into_its_sandbox_and_its_exit_status_is_told(
        server: ForkServer, tmp_path: os.PathLike[str]) -> None:
    sandbox = str(tmp_path)
    process = await server.spawn({}, sandbox, f"{sandbox}/stdout", f"{sandbox}/stderr")
    # No MESOS_* environment: the command executor says what is missing and exits 2.
    assert await asyncio.wait_for(process.exited, 10) == 2
    with open(f"{sandbox}/stderr") as stderr:
        assert "missing environment MESOS_AGENT_ENDPOINT" in stderr.read()


async def test_executors_lead_process_groups_of_their_own_and_die_by_signal(
        server: ForkServer, tmp_path: os.PathLike[str], silent_agent: dict[str, str]) -> None:
    sandbox = str(tmp_path)
    process = await server.spawn(silent_agent, sandbox, f"{sandbox}/out", f"{sandbox}/err")
    child = psutil.Process(process.pid)
    assert os.getpgid(process.pid) == process.pid  # the agent signals the group
    for _ in range(200):  # it moves into its sandbox as it starts
        if child.cwd() == sandbox:
            break
        await asyncio.sleep(0.01)
    assert child.cwd() == sandbox
    assert process.start_time == start_time_of(process.pid)
    assert is_same_process(process.pid, process.start_time)
    PosixLauncher.signal(process, signal.SIGKILL)
    assert await asyncio.wait_for(process.exited, 10) == -signal.SIGKILL


async def test_a_dead_zygote_hands_its_executors_to_pidfd_watches_and_is_restarted(
        server: ForkServer, tmp_path: os.PathLike[str], silent_agent: dict[str, str]) -> None:
    sandbox = str(tmp_path)
    process = await server.spawn(silent_agent, sandbox, f"{sandbox}/out", f"{sandbox}/err")
    zygote = psutil.Process(process.pid).parent()
    assert zygote is not None
    zygote.kill()
    await asyncio.sleep(0.3)
    assert psutil.pid_exists(process.pid)  # the executor outlives its zygote
    PosixLauncher.signal(process, signal.SIGKILL)
    await asyncio.wait_for(process.exited, 10)  # noticed through a pidfd now
    again = await server.spawn({}, sandbox, f"{sandbox}/out", f"{sandbox}/err")
    assert await asyncio.wait_for(again.exited, 10) == 2


async def test_a_cgroup_that_cannot_be_joined_fails_the_launch(
        server: ForkServer, tmp_path: os.PathLike[str]) -> None:
    sandbox = str(tmp_path)
    with pytest.raises(LaunchError, match="no-such-cgroup"):
        await server.spawn({}, sandbox, f"{sandbox}/out", f"{sandbox}/err",
                           cgroup_procs=[f"{sandbox}/no-such-cgroup/cgroup.procs"])
