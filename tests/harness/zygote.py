"""Daemons for the tests, forked from a process that has imported them once.

Starting ``mesos-master`` or ``mesos-agent`` costs about 0.6 s of CPU before ``main()`` runs,
nearly all of it imports (aiohttp alone builds two SSL contexts), and the suite starts some 300
daemons on 2 cores: half its CPU went to importing the same modules again. So each test process
keeps one zygote that imports the daemons' modules and forks a child per daemon, which runs the
console script's entry point with its own argv, environment, working directory and log file:
the same ``main()`` as from a shell, less the interpreter start. Executors, ``mesos-execute``
and everything else the tests run are still exec'd.

Nothing that starts threads or opens connections runs in the zygote before it forks (gRPC and
asyncio are imported, never started). ``AGENT_RUNTIME_TEST_FORK=0`` turns it off: every daemon
is exec'd (the benchmarks never use it).

The zygote is the daemons' parent: it reaps them and reports each exit status, which
:class:`Daemon` gives back with the ``subprocess.Popen`` methods the harness uses.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import random
import select
import signal
import subprocess
import sys
import threading
import traceback
from importlib.metadata import entry_points
from typing import Any, BinaryIO

ENTRY_POINTS = {"mesos-master": "agent_runtime.master.main:main",
                "mesos-agent": "agent_runtime.agent.main:main"}


def enabled() -> bool:
    return os.environ.get("AGENT_RUNTIME_TEST_FORK", "0") == "1"


def forkable(argv: list[str]) -> bool:
    return os.path.basename(argv[0]) in ENTRY_POINTS


class Daemon:
    """A forked daemon, as much of ``subprocess.Popen`` as the harness and tests use."""

    def __init__(self, zygote: Zygote, pid: int) -> None:
        self._zygote = zygote
        self.pid = pid
        self.returncode: int | None = None
        self._exited = threading.Event()

    def _ended(self, code: int) -> None:
        self.returncode = code
        self._exited.set()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._exited.wait(timeout):
            raise subprocess.TimeoutExpired(str(self.pid), timeout or 0.0)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:  # as Popen: never signal a pid that may be reused
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Zygote:
    """The test process's end: one zygote per test process, started on first use."""

    _instance: Zygote | None = None
    _instance_lock = threading.Lock()

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.harness.zygote"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, cwd=os.path.dirname(os.path.dirname(os.path.dirname(
                os.path.abspath(__file__)))))
        self._lock = threading.Lock()
        self._replies: list[int] = []
        self._replied = threading.Condition()
        self._daemons: dict[int, Daemon] = {}
        self._early: dict[int, int] = {}  # exits reported before the spawn's reply was read
        threading.Thread(target=self._read, name="zygote-reader", daemon=True).start()
        atexit.register(self.close)

    @classmethod
    def get(cls) -> Zygote:
        with cls._instance_lock:
            if cls._instance is None or cls._instance._process.poll() is not None:
                cls._instance = Zygote()
            return cls._instance

    def spawn(self, argv: list[str], env: dict[str, str], log: BinaryIO) -> Daemon:
        request = {"argv": argv, "env": env, "cwd": os.getcwd(), "log": log.name}
        assert self._process.stdin is not None
        with self._lock:
            self._process.stdin.write(json.dumps(request).encode() + b"\n")
            self._process.stdin.flush()
            with self._replied:
                self._replied.wait_for(lambda: bool(self._replies) or
                                       self._process.poll() is not None, timeout=30)
                if not self._replies:
                    raise RuntimeError("the daemon zygote did not answer")
                pid = self._replies.pop(0)
                daemon = self._daemons[pid] = Daemon(self, pid)
                if pid in self._early:
                    daemon._ended(self._early.pop(pid))
        return daemon

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            kind, pid_text, *rest = line.decode().split()
            pid = int(pid_text)
            with self._replied:
                if kind == "pid":
                    self._replies.append(pid)
                    self._replied.notify_all()
                elif pid in self._daemons:
                    self._daemons.pop(pid)._ended(int(rest[0]))
                else:
                    self._early[pid] = int(rest[0])
        with self._replied:
            self._replied.notify_all()

    def close(self) -> None:
        if self._process.poll() is None and self._process.stdin is not None:
            with contextlib.suppress(OSError):
                self._process.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(5)


# The zygote's side -----------------------------------------------------------------------------
def _child(request: dict[str, Any]) -> None:
    """In the forked child: become the daemon, run its entry point, exit with its status."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(devnull)
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = list(request["argv"])
        random.seed()  # every child would otherwise draw the zygote's sequence
        module, _, name = ENTRY_POINTS[os.path.basename(sys.argv[0])].partition(":")
        main = getattr(sys.modules[module], name)
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if isinstance(exc.code, str):
                print(exc.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _serve() -> None:
    import importlib

    for target in ENTRY_POINTS.values():
        importlib.import_module(target.partition(":")[0])
    assert {e.name: e.value for e in entry_points(group="console_scripts")
            if e.name in ENTRY_POINTS} == ENTRY_POINTS, "pyproject's scripts moved"
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    out = sys.stdout.buffer
    stdin = sys.stdin.fileno()
    pending = b""
    while True:
        readable, _, _ = select.select([stdin, wake_read], [], [])
        if wake_read in readable:
            os.read(wake_read, 4096)
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            out.write(f"exit {pid} {os.waitstatus_to_exitcode(status)}\n".encode())
            out.flush()
        if stdin in readable:
            data = os.read(stdin, 65536)
            if not data:
                return  # the test process is gone; its daemons are its to stop
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                request = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    os.close(wake_read)
                    os.close(wake_write)
                    signal.set_wakeup_fd(-1)
                    _child(request)
                out.write(f"pid {pid}\n".encode())
                out.flush()


if __name__ == "__main__":
    _serve()
