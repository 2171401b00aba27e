"""Executors' sandboxes, made ahead of the launches that take them.

A new executor's sandbox is six new inodes: ``executors/<executor_id>``, ``runs``,
``<container_id>``, the ``latest`` link, and the ``stdout`` and ``stderr`` its executor opens. On a
busy ext4 (sandboxes made and removed all day) a new directory costs 0.8-1.7 ms of kernel time
(the allocator walks inodes deleted lately), a file ~0.1 ms: for a batch of launches that is
tens of milliseconds of CPU in the middle of the burst. So once started the agent keeps a few
spares under ``paths.spare_sandboxes``, each the ``executors/<executor_id>`` directory of a run
to come, its container id chosen in advance::

    <spare>/<container_id>/runs/latest -> <container_id>
    <spare>/<container_id>/runs/<container_id>/{stdout,stderr}   (empty, mode 0644)

and a launch takes one with one rename onto ``executors/<executor_id>``. Spares are made again
once launches pause for ``REFILL_AFTER`` seconds, so a batch never waits for them. An executor
id that ran before (its directory is there and not empty), another filesystem under ``slaves/``,
or no spare left: the sandbox is made in place, as it always was. Everything here runs on
threads of its own, never on the event loop, and never on the default executor, where a long
job (a Docker call) could hold a launch up.

Spares hold nothing: a restarted agent removes what it finds and makes new ones.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import logging
import os
import shutil
import uuid

log = logging.getLogger(__name__)

SPARES = 16  # more than a batch of launches usually brings
REFILL_AFTER = 0.1  # seconds without a launch before spares are made again
THREADS = 4  # sandboxes made side by side: the kernel work runs in parallel
OUTPUT_MODE = 0o644  # as the executor's own O_CREAT would make stdout and stderr


def make_sandbox(directory: str, container_id: str) -> None:
    """The run's sandbox made in place, and the ``latest`` link beside it."""
    os.makedirs(directory, exist_ok=True)
    latest = os.path.join(os.path.dirname(directory), "latest")
    try:
        if os.path.islink(latest):
            os.unlink(latest)
        os.symlink(container_id, latest)
    except OSError:
        pass


def make_spare(root: str) -> str:
    """One spare under ``root`` (built under a dot name, renamed when whole); its container id."""
    container_id = str(uuid.uuid4())
    building = os.path.join(root, f".{container_id}")
    run = os.path.join(building, "runs", container_id)
    os.makedirs(run)
    os.symlink(container_id, os.path.join(building, "runs", "latest"))
    for name in ("stdout", "stderr"):
        os.close(os.open(os.path.join(run, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                         OUTPUT_MODE))
    os.rename(building, os.path.join(root, container_id))
    return container_id


class Sandboxes:
    """Makes executors' sandboxes, from spares when it has them (``start`` turns spares on)."""

    def __init__(self, spare_root: str) -> None:
        self.spare_root = spare_root
        self._ready: list[str] = []  # container ids of whole spares, none handed out yet
        self._started = False
        self._cleared = False  # what an earlier run of the agent left is removed first
        self._filling = False
        self._timer: asyncio.TimerHandle | None = None
        self._threads: concurrent.futures.ThreadPoolExecutor | None = None

    def container_id(self) -> str:
        """The container id for a new run: a spare's when one is ready."""
        return self._ready.pop() if self._ready else str(uuid.uuid4())

    async def make(self, directory: str, container_id: str) -> None:
        """The sandbox at ``directory`` (``.../runs/<container_id>``), from the spare of that
        container id if there is one."""
        await asyncio.get_running_loop().run_in_executor(
            self._pool(), self._take, directory, container_id)
        self._later()

    def start(self) -> None:
        """Remove what an earlier run left and make spares (on the running loop)."""
        self._started = True
        self._later(0.0)

    def close(self) -> None:
        self._started = False
        if self._timer is not None:
            self._timer.cancel()
        if self._threads is not None:
            self._threads.shutdown(wait=True)
            self._threads = None

    def _pool(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._threads is None:
            self._threads = concurrent.futures.ThreadPoolExecutor(
                max_workers=THREADS, thread_name_prefix="sandbox")
        return self._threads

    def _take(self, directory: str, container_id: str) -> None:
        spare = os.path.join(self.spare_root, container_id)
        if os.path.isdir(spare):
            executor_dir = os.path.dirname(os.path.dirname(directory))
            try:
                os.makedirs(os.path.dirname(executor_dir), exist_ok=True)
                os.rename(spare, executor_dir)  # onto nothing, or an empty directory
                return
            except OSError as exc:
                if exc.errno == errno.EXDEV:  # slaves/ is another filesystem: no more spares
                    log.info("sandboxes are on another filesystem than %s: no spares",
                             self.spare_root)
                    self._started = False
                shutil.rmtree(spare, ignore_errors=True)
        make_sandbox(directory, container_id)

    def _later(self, delay: float = REFILL_AFTER) -> None:
        if not self._started:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(delay, self._refill)

    def _refill(self) -> None:
        self._timer = None
        wanted = SPARES - len(self._ready)
        if self._filling or wanted <= 0 or not self._started:
            return
        self._filling = True
        future = asyncio.get_running_loop().run_in_executor(
            self._pool(), _fill, self.spare_root, wanted, not self._cleared)
        self._cleared = True
        future.add_done_callback(self._filled)

    def _filled(self, future: asyncio.Future[list[str]]) -> None:
        self._filling = False
        try:
            made = future.result()
        except (OSError, asyncio.CancelledError) as exc:
            log.warning("cannot make spare sandboxes under %s: %s", self.spare_root, exc)
            return
        if self._started:
            self._ready.extend(made)


def _fill(root: str, count: int, clear: bool) -> list[str]:
    """``count`` new spares under ``root``; ``clear``: first remove whatever is there."""
    if clear:
        shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root, exist_ok=True)
    return [make_spare(root) for _ in range(count)]
