"""A v1 scheduler that is not ours (avmesos, a maintained Mesos HTTP client) runs unchanged."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from typing import Any

from avmesos.client import MesosClient

from tests.harness.cluster import Cluster, get_json

TASKS = 30
CPUS = 0.2
MEM = 32.0


def _scalar(offer: dict[str, Any], name: str) -> float:
    return float(sum(r["scalar"]["value"] for r in offer["resources"] if r["name"] == name))


class Framework:
    """Launches ``TASKS`` command tasks as offers allow and records every update it gets."""

    def __init__(self, client: MesosClient) -> None:
        self.client = client
        self.launched = 0
        self.states: dict[str, list[str]] = {}
        self.done = threading.Event()
        self.lock = threading.Lock()

    def offers(self, offers: list[Any]) -> None:
        for offer in offers:
            info = offer.get_offer()
            # The command executor adds 0.1 cpus and 32 MB on top of each task.
            fit = int(min(_scalar(info, "cpus") // (CPUS + 0.1),
                          _scalar(info, "mem") // (MEM + 32)))
            with self.lock:
                count = min(fit, TASKS - self.launched)
                self.launched += count
            if count <= 0:
                offer.decline()
                continue
            tasks = [
                {
                    "name": "avmesos task",
                    "task_id": {"value": f"av-{uuid.uuid4()}"},
                    "agent_id": info["agent_id"],
                    "resources": [
                        {"name": "cpus", "type": "SCALAR", "scalar": {"value": CPUS}},
                        {"name": "mem", "type": "SCALAR", "scalar": {"value": MEM}},
                    ],
                    "command": {"value": "test -d \"$MESOS_SANDBOX\" && echo done"},
                }
                for _ in range(count)
            ]
            offer.accept(tasks)

    def update(self, update: dict[str, Any]) -> None:
        status = update["status"]
        with self.lock:
            self.states.setdefault(status["task_id"]["value"], []).append(status["state"])
            finished = sum(1 for s in self.states.values() if s[-1] == "TASK_FINISHED")
        if finished == TASKS:
            self.done.set()


def test_avmesos_launches_and_finishes_many_tasks(cluster: Cluster) -> None:
    client = MesosClient(mesos_urls=[cluster.master_url], frameworkName="avmesos-test",
                         max_reconnect=1)
    framework = Framework(client)
    client.on(MesosClient.OFFERS, framework.offers)
    client.on(MesosClient.UPDATE, framework.update)
    thread = threading.Thread(target=client.register, daemon=True)
    thread.start()
    try:
        assert framework.done.wait(60), framework.states
    finally:
        client.stop = True
        if client.driver is not None:
            client.driver.tearDown()
        else:
            client.get_driver().tearDown()
        thread.join(20)
    assert not thread.is_alive(), "the client's event stream did not end after TEARDOWN"
    assert len(framework.states) == TASKS
    # Every task went STARTING, RUNNING, FINISHED, each update delivered once (acked by avmesos).
    assert Counter(tuple(s) for s in framework.states.values()) == {
        ("TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"): TASKS
    }
    (done,) = get_json(cluster.master_url + "/master/frameworks")["completed_frameworks"]
    assert done["name"] == "avmesos-test"
    assert len(done["completed_tasks"]) == TASKS
