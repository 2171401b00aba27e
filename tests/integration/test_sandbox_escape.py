"""Hostile frameworks and tasks against real daemons: framework IDs that would name a path
outside the work_dir are refused at SUBSCRIBE, and a task racing ``/files`` by flipping a sandbox
entry between a directory and a symlink never gets a host file served."""

from __future__ import annotations

import os
import secrets
import shlex
import sys
import tempfile
import time
from collections.abc import Iterator

import pytest
import requests

from tests.harness.cluster import Cluster, running_cluster
from tests.harness.curl import launch_task, post

ESCAPE = f"/tmp/agent-runtime-escape-{secrets.token_hex(4)}"
EMOJI = "\N{GRINNING FACE}"

# Run by the task in its sandbox: `entry` is, in turn, a real directory holding a decoy
# `secret` and a symlink to the directory holding the real one (argv[1]); as fast as it can.
FLIPPER = """
import os, sys
os.mkdir("real")
with open("real/secret", "w") as decoy:
    decoy.write("decoy\\n")
open("flipping", "w").close()
while True:
    os.rename("real", "entry")
    os.rename("entry", "real")
    os.symlink(sys.argv[1], "entry")
    os.unlink("entry")
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with tempfile.TemporaryDirectory() as work_dir, running_cluster(work_dir) as running:
        yield running


def _launched(root: str) -> list[str]:
    """Directories an executor's launch made (sandboxes, checkpoints) anywhere under root."""
    return [d for d, dirs, _ in os.walk(root) if "executors" in dirs]


@pytest.mark.parametrize(("framework_id", "words"), [
    ("../../..", "invalid characters"),
    (ESCAPE, "invalid characters"),
    ("..", "disallowed"),
    ("nul\x00byte", "invalid characters"),
    ("new\nline", "invalid characters"),
    (EMOJI * 200, "longer than 255 bytes"),
], ids=["up-three", "absolute", "dot-dot", "nul", "newline", "emoji-800-bytes"])
def test_a_hostile_framework_id_is_refused_at_subscribe(cluster: Cluster, framework_id: str,
                                                        words: str) -> None:
    launched = _launched(cluster.work_dir)
    info = {"user": "root", "name": "hostile", "id": {"value": framework_id}}
    with requests.post(cluster.master_url + "/api/v1/scheduler", stream=True, timeout=5,
                       json={"type": "SUBSCRIBE", "subscribe": {"framework_info": info}}) as got:
        status = got.status_code
        text = got.text if status != 200 else ""
    assert status == 400, f"subscribed as {framework_id[:20]!r}"
    assert "FrameworkInfo.id" in text and words in text
    frameworks = requests.get(cluster.master_url + "/master/frameworks", timeout=5).json()
    assert framework_id not in {f["id"] for f in frameworks["frameworks"]}
    assert not os.path.exists(ESCAPE)
    assert _launched(cluster.work_dir) == launched
    assert requests.get(cluster.master_url + "/health", timeout=5).status_code == 200


def test_flipping_an_entry_to_a_symlink_never_serves_the_host_file(cluster: Cluster) -> None:
    token = secrets.token_hex(16)
    with tempfile.TemporaryDirectory() as host_dir:  # outside the cluster's work_dir
        with open(os.path.join(host_dir, "secret"), "w") as handle:
            handle.write(f"host secret {token}\n")
        open(os.path.join(host_dir, f"listed-{token}"), "w").close()
        command = f"exec {shlex.quote(sys.executable)} -c {shlex.quote(FLIPPER)} {host_dir}"
        running = launch_task(cluster, command, task_id="flipper", name="flipper")
        api = cluster.master_url + "/api/v1/scheduler"
        try:
            agent = f"http://127.0.0.1:{cluster.agent_ports[0]}"
            entry = (f"/frameworks/{running.framework_id}/executors/flipper/runs/latest/"
                     "entry")
            seen: dict[int, int] = {}
            with requests.Session() as session:
                deadline = time.monotonic() + 20
                while "flipping" not in session.get(
                        agent + "/files/browse", params={"path": entry.rsplit("/", 1)[0]},
                        timeout=5).text:
                    assert time.monotonic() < deadline, "the flipper never started"
                    time.sleep(0.05)
                stop = time.monotonic() + 4
                while time.monotonic() < stop:
                    for endpoint, path in (("/files/read", entry + "/secret"),
                                           ("/files/read", entry + "/secret"),
                                           ("/files/browse", entry)):
                        answer = session.get(agent + endpoint, params={"path": path},
                                             timeout=5)
                        assert token not in answer.text, f"{endpoint} leaked: {answer.text}"
                        assert answer.status_code in (200, 403, 404), answer.text
                        seen[answer.status_code] = seen.get(answer.status_code, 0) + 1
            # Both sides of the flip were met: the race was really run.
            assert seen.get(200, 0) > 0 and seen.get(403, 0) > 0, seen
        finally:
            kill = {"type": "KILL", "framework_id": {"value": running.framework_id},
                    "kill": {"task_id": {"value": "flipper"}}}
            post(api, kill, running.sub.stream_id)
            running.close()
