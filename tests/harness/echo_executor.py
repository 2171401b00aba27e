"""A third-party custom executor for the integration tests: standard library only, JSON on the wire.

It knows nothing of agent_runtime: it finds the agent through ``MESOS_AGENT_ENDPOINT`` and speaks
the Mesos v1 executor HTTP API with ``http.client``, as an executor written against Mesos would.

What it does with each LAUNCH depends on the task's ``data``:

- ``finish``: TASK_RUNNING (its ``data`` is the JSON report below); once that is ACKNOWLEDGED,
  TASK_FINISHED with ``data`` ``done <task id>``; once that is ACKNOWLEDGED, a MESSAGE
  ``acked <task id>`` to the framework (so the scheduler sees that both acknowledgements arrived).
- ``run``: TASK_RUNNING, then nothing until a KILL, answered with TASK_KILLED.
- ``exit``: TASK_RUNNING; once that is ACKNOWLEDGED, the executor exits with status 3 without
  reporting the task terminal.
- ``stubborn``: TASK_RUNNING, and from then on SHUTDOWN is ignored (and SIGTERM too), so the
  agent has to kill the executor when its shutdown grace period is over.

A framework MESSAGE ``x`` is echoed back as ``echo:x``. SHUTDOWN writes ``shutdown`` into the
sandbox and exits 0.

The report: the ``MESOS_*`` environment, what SUBSCRIBED carried, the executor's pid, working
directory and the tasks launched on it so far, and ``probes``: the answers (status, body) the agent
gave to calls it must refuse: an UPDATE before SUBSCRIBE, then after it an UPDATE with
TASK_STAGING, with a short uuid, without a uuid, without a task id, without a state, with a source
other than SOURCE_EXECUTOR and with another executor's id, a MESSAGE without data, and calls naming
an unknown executor or framework.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import sys
import time
import uuid
from typing import Any

JSON = "application/json"
ENV_NAMES = (
    "MESOS_AGENT_ENDPOINT", "MESOS_FRAMEWORK_ID", "MESOS_EXECUTOR_ID", "MESOS_SANDBOX",
    "MESOS_DIRECTORY", "MESOS_CHECKPOINT", "MESOS_SLAVE_ID", "MESOS_CONTAINER_ID",
    "MESOS_RECOVERY_TIMEOUT", "MESOS_SUBSCRIPTION_BACKOFF_MAX",
    "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD",
)


def log(text: str) -> None:
    print(f"echo_executor: {text}", file=sys.stderr, flush=True)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class Executor:
    def __init__(self) -> None:
        self.endpoint = os.environ["MESOS_AGENT_ENDPOINT"]
        self.framework_id = os.environ["MESOS_FRAMEWORK_ID"]
        self.executor_id = os.environ["MESOS_EXECUTOR_ID"]
        self.sandbox = os.environ["MESOS_SANDBOX"]
        # The executor's identity: the token the agent gave it, on every call.
        self.headers = {"Content-Type": JSON, "Accept": JSON}
        token = os.environ.get("MESOS_EXECUTOR_AUTHENTICATION_TOKEN")
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.report: dict[str, Any] = {
            "env": {name: os.environ.get(name) for name in ENV_NAMES},
            "pid": os.getpid(),
            "cwd": os.getcwd(),
            "launched": [],
            "probes": {},
        }
        # uuid of an update -> what to do once the agent says the scheduler acknowledged it
        self.on_ack: dict[str, tuple[str, str]] = {}
        self.stubborn = False

    # Calls -------------------------------------------------------------------------------
    def post(self, call: dict[str, Any]) -> tuple[int, str]:
        host, _, port = self.endpoint.rpartition(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            conn.request("POST", "/api/v1/executor", json.dumps(call),
                         self.headers)
            response = conn.getresponse()
            return response.status, response.read().decode(errors="replace")
        finally:
            conn.close()

    def call(self, kind: str, **fields: Any) -> dict[str, Any]:
        return {"executor_id": {"value": self.executor_id},
                "framework_id": {"value": self.framework_id}, "type": kind, **fields}

    def status(self, task_id: str, state: str, data: bytes = b"") -> dict[str, Any]:
        status: dict[str, Any] = {
            "task_id": {"value": task_id}, "state": state, "source": "SOURCE_EXECUTOR",
            "uuid": b64(uuid.uuid4().bytes), "timestamp": time.time(),
        }
        if data:
            status["data"] = b64(data)
        return status

    def update(self, task_id: str, state: str, data: bytes = b"",
               then: str | None = None) -> None:
        status = self.status(task_id, state, data)
        if then is not None:
            self.on_ack[status["uuid"]] = (task_id, then)
        code, body = self.post(self.call("UPDATE", update={"status": status}))
        if code != 202:
            raise RuntimeError(f"UPDATE {state} of {task_id} answered {code}: {body}")

    def message(self, data: bytes) -> None:
        code, body = self.post(self.call("MESSAGE", message={"data": b64(data)}))
        if code != 202:
            raise RuntimeError(f"MESSAGE answered {code}: {body}")

    def probe(self, name: str, call: dict[str, Any]) -> None:
        code, body = self.post(call)
        self.report["probes"][name] = [code, body]

    def probe_update(self, name: str, **changes: Any) -> None:
        status = self.status("probe", "TASK_RUNNING")
        status.update(changes)
        for key in [k for k, v in status.items() if v is None]:
            del status[key]
        self.probe(name, self.call("UPDATE", update={"status": status}))

    # Events ------------------------------------------------------------------------------
    def run(self) -> int:
        self.probe_update("update_before_subscribe")
        host, _, port = self.endpoint.rpartition(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        conn.request("POST", "/api/v1/executor", json.dumps(self.call("SUBSCRIBE", subscribe={})),
                      self.headers)
        response = conn.getresponse()
        if response.status != 200:
            log(f"SUBSCRIBE answered {response.status}: {response.read()!r}")
            return 2
        while True:
            line = response.readline()
            if not line:
                log("the agent closed the event stream")
                return 1
            if not line.strip():
                continue
            event = json.loads(response.read(int(line)))
            done = self.handle(event)
            if done is not None:
                return done

    def handle(self, event: dict[str, Any]) -> int | None:
        kind = event.get("type")
        log(f"event {kind}")
        if kind == "SUBSCRIBED":
            subscribed = event["subscribed"]
            self.report["subscribed"] = {
                "executor_id": subscribed["executor_info"]["executor_id"]["value"],
                "framework_id": subscribed["framework_info"]["id"]["value"],
                "agent_id": subscribed["agent_info"]["id"]["value"],
                "container_id": subscribed["container_id"]["value"],
            }
            self.probe_after_subscribe()
        elif kind == "LAUNCH":
            task = event["launch"]["task"]
            task_id = task["task_id"]["value"]
            mode = base64.b64decode(task.get("data", "")).decode()
            self.report["launched"].append(task_id)
            report = json.dumps(self.report).encode()
            if mode == "finish":
                self.update(task_id, "TASK_RUNNING", report, then="finish")
            elif mode == "exit":
                self.update(task_id, "TASK_RUNNING", report, then="exit")
            elif mode == "stubborn":
                self.stubborn = True
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                self.update(task_id, "TASK_RUNNING", report)
            else:
                self.update(task_id, "TASK_RUNNING", report)
        elif kind == "ACKNOWLEDGED":
            ack = event["acknowledged"]
            task_id, then = self.on_ack.pop(ack["uuid"], (ack["task_id"]["value"], ""))
            if then == "finish":
                self.update(task_id, "TASK_FINISHED", f"done {task_id}".encode(), then="told")
            elif then == "told":
                self.message(f"acked {task_id}".encode())
            elif then == "exit":
                log(f"exiting with task {task_id} still running")
                return 3
        elif kind == "KILL":
            self.update(event["kill"]["task_id"]["value"], "TASK_KILLED")
        elif kind == "MESSAGE":
            self.message(b"echo:" + base64.b64decode(event["message"].get("data", "")))
        elif kind == "SHUTDOWN" and not self.stubborn:
            with open(os.path.join(self.sandbox, "shutdown"), "w") as handle:
                handle.write("shutdown\n")
            return 0
        return None

    def probe_after_subscribe(self) -> None:
        self.probe_update("update_staging", state="TASK_STAGING")
        self.probe_update("update_short_uuid", uuid=b64(b"12345678"))
        self.probe_update("update_no_uuid", uuid=None)
        self.probe_update("update_no_task_id", task_id=None)
        self.probe_update("update_no_state", state=None)
        self.probe("message_no_data", self.call("MESSAGE", message={}))
        self.probe_update("update_source_agent", source="SOURCE_AGENT")
        self.probe_update("update_other_executor_id", executor_id={"value": "someone-else"})
        unknown_executor = self.call("HEARTBEAT")
        unknown_executor["executor_id"] = {"value": "no-such-executor"}
        self.probe("unknown_executor", unknown_executor)
        unknown_framework = self.call("HEARTBEAT")
        unknown_framework["framework_id"] = {"value": "no-such-framework"}
        self.probe("unknown_framework", unknown_framework)
        self.probe("heartbeat", self.call("HEARTBEAT"))


def main() -> int:
    return Executor().run()


if __name__ == "__main__":
    sys.exit(main())
