"""A real ZooKeeper server on loopback for tests (Debian's `zookeeper` package, standalone)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

from tests.harness.cluster import free_port
from tests.harness.needs import missing

ZK_SERVER = "/usr/share/zookeeper/bin/zkServer.sh"


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"ruok")
            return sock.recv(4) == b"imok"
    except OSError:
        return False


@contextlib.contextmanager
def zookeeper_server(work_dir: str) -> Iterator[str]:
    """Start a standalone server in ``work_dir``; yields ``127.0.0.1:<port>``."""
    if not os.path.exists(ZK_SERVER) or shutil.which("java") is None:
        missing("ZooKeeper (apt-get install zookeeper; scripts/deps.sh does)")
    port = free_port()
    data = os.path.join(work_dir, "zk-data")
    os.makedirs(data, exist_ok=True)
    config = os.path.join(work_dir, "zoo.cfg")
    with open(config, "w") as handle:
        handle.write(f"tickTime=500\ndataDir={data}\nclientPort={port}\n"
                     "clientPortAddress=127.0.0.1\nadmin.enableServer=false\n"
                     "4lw.commands.whitelist=ruok\nmaxSessionTimeout=60000\n"
                     "minSessionTimeout=1000\n")
    log = open(os.path.join(work_dir, "zookeeper.log"), "ab")  # noqa: SIM115
    env = dict(os.environ, ZOOCFGDIR=work_dir, ZOO_LOG_DIR=work_dir)
    process = subprocess.Popen([ZK_SERVER, "start-foreground", config], stdout=log,
                               stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.time() + 30
        while not _answers(port):
            if process.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"ZooKeeper did not start; see {work_dir}/zookeeper.log")
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 9)
        process.wait()
        log.close()
