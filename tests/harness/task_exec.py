"""``mesos task exec`` over the wire, as Mesos's CLI drives it (``src/python/cli_new/lib/cli/
mesos.py`` TaskIO): the parent container from the task's first status (``/tasks``),
LAUNCH_NESTED_CONTAINER_SESSION for the output, ATTACH_CONTAINER_INPUT (a short test
connection, then the stream), WAIT_CONTAINER for the exit status."""

from __future__ import annotations

import base64
import json
import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import requests

from agent_runtime.codec import recordio
from tests.harness.cluster import Cluster, get_json

RECORDIO = {"Accept": "application/recordio", "Message-Accept": "application/json"}


def agent_api(cluster: Cluster) -> str:
    return f"http://127.0.0.1:{cluster.agent_ports[0]}/api/v1"


def parent_of(cluster: Cluster, task_id: str) -> dict[str, Any]:
    """What the CLI uses: the container id in the task's first status (``/tasks``)."""
    tasks = get_json(f"{cluster.master_url}/tasks?task_id={task_id}")["tasks"]
    container_id: dict[str, Any] = tasks[0]["statuses"][0]["container_status"]["container_id"]
    return container_id


class TaskExec:
    """``mesos task exec [-i] <task> <cmd> <args>``, minus the terminal."""

    def __init__(self, cluster: Cluster, task_id: str, argv: list[str],
                 stdin: bytes | None = None) -> None:
        self.url = agent_api(cluster)
        self.container_id = {"parent": parent_of(cluster, task_id),
                             "value": str(uuid.uuid4())}
        self.argv = argv
        self.stdin = stdin
        self.out = bytearray()
        self.err = bytearray()

    def _input(self, started: threading.Event) -> None:
        headers = {"Content-Type": "application/recordio",
                   "Message-Content-Type": "application/json", "Accept": "application/json",
                   "Connection": "close"}
        first = {"type": "ATTACH_CONTAINER_INPUT", "attach_container_input": {
            "type": "CONTAINER_ID", "container_id": self.container_id}}
        started.wait(10)
        test = requests.post(self.url, data=iter([recordio.encode(json.dumps(first).encode())]),
                             headers=headers, timeout=10)
        assert test.status_code in (200, 500), test.text

        def records() -> Iterator[bytes]:
            yield recordio.encode(json.dumps(first).encode())
            assert self.stdin is not None
            for chunk in (self.stdin, b""):  # b"": the end of input
                message = {"type": "ATTACH_CONTAINER_INPUT", "attach_container_input": {
                    "type": "PROCESS_IO", "process_io": {"type": "DATA", "data": {
                        "type": "STDIN", "data": base64.b64encode(chunk).decode()}}}}
                yield recordio.encode(json.dumps(message).encode())

        answer = requests.post(self.url, data=records(), headers=headers, timeout=10)
        assert answer.status_code == 200, answer.text

    def run(self) -> int:
        started = threading.Event()
        feeder = None
        if self.stdin is not None:
            feeder = threading.Thread(target=self._input, args=(started,), daemon=True)
            feeder.start()
        launch = {"type": "LAUNCH_NESTED_CONTAINER_SESSION",
                  "launch_nested_container_session": {
                      "container_id": self.container_id,
                      "command": {"value": self.argv[0], "arguments": self.argv,
                                  "shell": False}}}
        with requests.post(self.url, json=launch, headers=RECORDIO, stream=True,
                           timeout=20) as response:
            assert response.status_code == 200, response.text
            assert response.headers["Message-Content-Type"] == "application/json"
            started.set()
            decoder = recordio.Decoder()
            for chunk in response.iter_content(chunk_size=None):
                for record in decoder.feed(chunk):
                    message = json.loads(record)
                    assert message["type"] == "DATA"
                    data = base64.b64decode(message["data"]["data"])
                    (self.out if message["data"]["type"] == "STDOUT" else self.err).extend(data)
        if feeder is not None:
            feeder.join(10)
        wait = requests.post(self.url, json={"type": "WAIT_CONTAINER", "wait_container": {
            "container_id": self.container_id}}, timeout=20)
        assert wait.status_code == 200, wait.text
        status: int = wait.json()["wait_container"]["exit_status"]
        return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
