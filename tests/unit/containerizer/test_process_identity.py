"""A process is its pid and its start time since boot: the identity an agent checkpoints and the
next agent checks before adopting an executor. Real processes; the wall clock plays no part."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil

from agent_runtime.containerizer.launcher import is_same_process, start_time_of


def test_start_time_is_boot_relative_and_stable() -> None:
    me = start_time_of(os.getpid())
    uptime = time.clock_gettime(time.CLOCK_BOOTTIME)
    assert 0 < me <= uptime
    assert start_time_of(os.getpid()) == me
    assert is_same_process(os.getpid(), me)


def test_a_command_name_with_spaces_and_parentheses_does_not_shift_the_fields(
        tmp_path: os.PathLike[str]) -> None:
    # The name is the executable's: a hostile task names its binary to confuse /proc parsers.
    odd = os.path.join(tmp_path, "a) b (c")
    os.symlink("/bin/sleep", odd)
    before = time.clock_gettime(time.CLOCK_BOOTTIME)
    child = subprocess.Popen([odd, "30"])
    try:
        started = start_time_of(child.pid)
        assert before - 0.05 <= started <= time.clock_gettime(time.CLOCK_BOOTTIME) + 0.05
        assert is_same_process(child.pid, started)
    finally:
        child.kill()
        child.wait()


def test_another_start_time_a_zombie_or_a_gone_pid_is_not_the_process() -> None:
    child = subprocess.Popen([sys.executable, "-S", "-c", "pass"])
    started = start_time_of(child.pid)
    assert not is_same_process(child.pid, started + 1.0)
    while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:
        time.sleep(0.01)
    assert not is_same_process(child.pid, started)  # exited, not yet reaped
    child.wait()
    assert not is_same_process(child.pid, started)


def test_a_checkpoint_of_an_older_agent_in_wall_clock_seconds_is_still_recognised() -> None:
    wall = psutil.Process().create_time()
    assert is_same_process(os.getpid(), wall)
    assert not is_same_process(os.getpid(), wall - 60)
