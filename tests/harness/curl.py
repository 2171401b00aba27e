"""Driving the v1 scheduler API with curl, exactly as seed 004 does it from a shell."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.harness.cluster import Cluster
from tests.harness.shapes import TASK_RESOURCES

Event = dict[str, Any]


def post(url: str, body: dict[str, Any] | str, stream_id: str | None = None,
         content_type: str = "application/json") -> tuple[int, str]:
    """``curl -X POST -d@-``; returns the status code and the body text."""
    data = body if isinstance(body, str) else json.dumps(body)
    argv = ["curl", "-sS", "--max-time", "30", "-X", "POST", "-H", f"Content-Type: {content_type}",
            "-d@-", "-w", "\n%{http_code}", url]
    if stream_id is not None:
        argv[6:6] = ["-H", f"Mesos-Stream-Id:{stream_id}"]
    done = subprocess.run(argv, input=data.encode(), capture_output=True, check=True)
    text, _, code = done.stdout.decode().rpartition("\n")
    return int(code), text


class Subscription:
    """``curl --no-buffer -i`` holding the SUBSCRIBE stream open; events decoded from RecordIO."""

    def __init__(self, url: str, body: dict[str, Any],
                 auth: tuple[str, str] | None = None) -> None:
        argv = ["curl", "-sS", "-i", "--no-buffer", "-X", "POST",
                "-H", "Content-Type: application/json", "-d@-", url]
        if auth is not None:
            argv[1:1] = ["-u", f"{auth[0]}:{auth[1]}"]
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(body).encode())
        self.process.stdin.close()
        self.status = 0
        self.headers: dict[str, str] = {}
        self.events: list[Event] = []
        self._taken: set[int] = set()
        self._ready = threading.Event()
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise TimeoutError("no response headers from the master")

    @property
    def stream_id(self) -> str:
        return self.headers["mesos-stream-id"]

    def _read(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        status_line = stdout.readline().decode()
        self.status = int(status_line.split()[1]) if status_line else 0
        for raw in iter(stdout.readline, b""):
            line = raw.decode().strip()
            if not line:
                break
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self._ready.set()
        while True:
            length_line = stdout.readline()
            if not length_line:
                break
            if not length_line.strip():
                continue
            record = stdout.read(int(length_line))
            with self._cond:
                self.events.append(json.loads(record))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def take(self, predicate: Callable[[Event], bool], timeout: float = 60.0) -> Event:
        """The first event not taken before that matches ``predicate``, waiting for it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for index, event in enumerate(self.events):
                    if index not in self._taken and predicate(event):
                        self._taken.add(index)
                        return event
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not self._thread.is_alive()):
                    seen = [e.get("type") for e in self.events]
                    raise TimeoutError(f"no matching event; seen {seen}: {self.events[-4:]}")
                self._cond.wait(left)

    def take_update(self, task_id: str, state: str, timeout: float = 60.0) -> dict[str, Any]:
        event = self.take(lambda e: e["type"] == "UPDATE"
                          and e["update"]["status"]["task_id"]["value"] == task_id
                          and e["update"]["status"]["state"] == state, timeout)
        return dict(event["update"]["status"])

    def take_offers(self, timeout: float = 60.0) -> list[dict[str, Any]]:
        return list(self.take(lambda e: e["type"] == "OFFERS", timeout)["offers"]["offers"])

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(5)
        if self.process.stdout is not None:
            self.process.stdout.close()


@dataclass
class Running:
    """A framework subscribed with curl, holding one command task in the state asked for."""

    sub: Subscription
    framework_id: str
    agent_id: str
    task_id: str

    def close(self) -> None:
        self.sub.close()


def acknowledge(api: str, sub: Subscription, framework_id: str, status: dict[str, Any]) -> None:
    body = {"framework_id": {"value": framework_id}, "type": "ACKNOWLEDGE",
            "acknowledge": {"agent_id": status["agent_id"], "task_id": status["task_id"],
                            "uuid": status["uuid"]}}
    assert post(api, body, sub.stream_id) == (202, "")


def launch_task(cluster: Cluster, command: str, task_id: str = "sleeper",
                name: str = "endpoints", state: str = "TASK_RUNNING",
                framework_info: dict[str, Any] | None = None,
                agent_id: str | None = None, refuse_seconds: float | None = None) -> Running:
    """SUBSCRIBE with curl, launch ``command`` on the first offer (of ``agent_id``, when given),
    wait for ``state``. ``refuse_seconds``: the ACCEPT's filter on what the offer leaves (the
    master's default is 5 s, after which the rest comes back to this framework and stays with
    it, unanswered: pass a long one where another framework needs offers later)."""
    api = cluster.master_url + "/api/v1/scheduler"
    info = {"user": "root", "name": name, **(framework_info or {})}
    sub = Subscription(api, {"type": "SUBSCRIBE", "subscribe": {"framework_info": info}})
    try:
        subscribed = sub.take(lambda e: e["type"] == "SUBSCRIBED")
        framework_id = subscribed["subscribed"]["framework_id"]["value"]
        offer: dict[str, Any] | None = None
        while offer is None:
            offer = next((o for o in sub.take_offers()
                          if agent_id in (None, o["agent_id"]["value"])), None)
        task = {
            "name": task_id, "task_id": {"value": task_id}, "agent_id": offer["agent_id"],
            "command": {"value": command},
            "resources": [
                {"name": "cpus", "type": "SCALAR", "scalar": {"value": TASK_RESOURCES["cpus"]}},
                {"name": "mem", "type": "SCALAR", "scalar": {"value": TASK_RESOURCES["mem"]}},
            ],
        }
        accept: dict[str, Any] = {
            "framework_id": {"value": framework_id}, "type": "ACCEPT",
            "accept": {"offer_ids": [offer["id"]],
                       "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}]}}
        if refuse_seconds is not None:
            accept["accept"]["filters"] = {"refuse_seconds": refuse_seconds}
        assert post(api, accept, sub.stream_id) == (202, "")
        for expected in ("TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"):
            status = sub.take_update(task_id, expected)
            acknowledge(api, sub, framework_id, status)
            if expected == state:
                break
        return Running(sub, framework_id, offer["agent_id"]["value"], task_id)
    except BaseException:
        sub.close()
        raise
