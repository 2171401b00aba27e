"""``mesos task attach`` against a real master and agent, driven over the wire as Mesos's CLI
drives it (``src/python/cli_new/lib/cli/mesos.py`` TaskIO.attach): the task's container from its
first status (``/tasks``), ATTACH_CONTAINER_OUTPUT of that container, which follows the task's
sandbox ``stdout`` and ``stderr`` from the moment of attaching until the task's executor ends,
and ATTACH_CONTAINER_INPUT answered as Mesos answers it for a task launched without a TTY (the
500 its CLI's test connection goes on past), both while the task runs."""

from __future__ import annotations

import base64
import json
import os
import tempfile
from collections.abc import Iterator

import pytest
import requests

from agent_runtime.codec import recordio
from tests.harness.cluster import Cluster, agent_state, running_cluster, sandbox_file
from tests.harness.curl import Running, launch_task
from tests.harness.task_exec import agent_api, parent_of
from tests.harness.wait import wait_for

SAY = "; ".join(f"echo out-{i}; echo err-{i} >&2; sleep 0.05" for i in range(1, 11))
# The rest of the output waits for the test to have attached (it creates ``go`` in the sandbox):
# what is written before attaching is not followed, so a fixed pause would race a loaded host.
COMMAND = f"echo before-attach; while [ ! -e go ]; do sleep 0.05; done; {SAY}"
OUTPUT = {"Content-Type": "application/json", "Accept": "application/recordio",
          "Message-Accept": "application/json"}
INPUT = {"Content-Type": "application/recordio", "Message-Content-Type": "application/json",
         "Accept": "application/json", "Connection": "close"}


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[Cluster, Running]]:
    with tempfile.TemporaryDirectory() as work_dir, running_cluster(work_dir) as cluster:
        running = launch_task(cluster, COMMAND, task_id="talker")
        try:
            yield cluster, running
        finally:
            running.close()


def _sandbox(cluster: Cluster, task_id: str) -> str:
    for framework in agent_state(cluster)["frameworks"]:
        for executor in framework["executors"]:
            if executor["id"] == task_id:
                return str(executor["directory"])
    raise AssertionError(f"no live executor {task_id} in the agent's state")


def test_attach_follows_the_tasks_output_until_it_ends(
        cluster: tuple[Cluster, Running]) -> None:
    c, running = cluster
    wait_for(lambda: "before-attach" in sandbox_file(c, "talker", "stdout"), 30,
             "the task's first line")
    container_id = parent_of(c, "talker")
    assert "parent" not in container_id  # the task's own container: what attach names
    body = {"type": "ATTACH_CONTAINER_OUTPUT",
            "attach_container_output": {"container_id": container_id}}
    answer = requests.post(agent_api(c), json=body, headers=OUTPUT, stream=True, timeout=20)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == "application/recordio"
    # Input, while the task runs: the CLI's test connection goes on past exactly this 500.
    first = {"type": "ATTACH_CONTAINER_INPUT", "attach_container_input": {
        "type": "CONTAINER_ID", "container_id": container_id}}
    refused = requests.post(agent_api(c), data=iter([recordio.encode(
        json.dumps(first).encode())]), headers=INPUT, timeout=10)
    assert refused.status_code == 500
    assert refused.text == "I/O switchboard server was disabled for this container"
    open(os.path.join(_sandbox(c, "talker"), "go"), "w").close()  # attached: talk now
    out, err = bytearray(), bytearray()
    decoder = recordio.Decoder()
    for chunk in answer.iter_content(chunk_size=None):  # ends when the executor does
        for record in decoder.feed(chunk):
            message = json.loads(record)
            assert message["type"] == "DATA"
            data = base64.b64decode(message["data"]["data"])
            (out if message["data"]["type"] == "STDOUT" else err).extend(data)
    running.sub.take_update("talker", "TASK_FINISHED")
    text_out, text_err = out.decode(), err.decode()
    assert "before-attach" not in text_out  # from the moment of attaching, as a terminal
    lines_out = [line for line in text_out.splitlines() if line.startswith("out-")]
    lines_err = [line for line in text_err.splitlines() if line.startswith("err-")]
    assert lines_out == [f"out-{i}" for i in range(1, 11)]
    assert lines_err == [f"err-{i}" for i in range(1, 11)]


def test_a_container_that_is_not_there_is_not_found(cluster: tuple[Cluster, Running]
                                                    ) -> None:
    c, _ = cluster
    missing = {"value": "no-such-container"}
    first = {"type": "ATTACH_CONTAINER_INPUT", "attach_container_input": {
        "type": "CONTAINER_ID", "container_id": missing}}
    answer = requests.post(agent_api(c), data=recordio.encode(json.dumps(first).encode()),
                           headers=INPUT, timeout=10)
    assert answer.status_code == 404, answer.text
    answer = requests.post(agent_api(c), json={
        "type": "ATTACH_CONTAINER_OUTPUT", "attach_container_output": {"container_id": missing}},
        headers=OUTPUT, timeout=10)
    assert answer.status_code == 404, answer.text
