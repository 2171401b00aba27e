"""The web UI's first render with 1,000 tasks (issue 14: under 1 s on this machine), against
the same page of the same cluster with no task, measured side by side in one run.

Starts a real master and agent (``tests/harness``), opens the UI in headless chromium
(``tests/harness/browser.py``) ``--loads`` times with no task and records, from the browser's
Performance API, the time from navigation to the first render of the cluster (the
``cluster-rendered`` mark the page sets once the operator stream's SUBSCRIBED is drawn) and the
page's bytes. Then a framework launches ``--tasks`` short command tasks (``true``, 0.01 cpus
each, many per offer) and waits until the master knows them all; the same loads are repeated,
of the overview and of the tasks page. Prints medians and the ratio to the empty cluster.

Run: ``.venv/bin/python bench/webui_render.py [--tasks 1000] [--loads 5]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import requests

from tests.harness.browser import chromium, wait_js
from tests.harness.cluster import Cluster, running_cluster
from tests.harness.curl import Subscription, post

RENDERED = ("const m = performance.getEntriesByName('cluster-rendered');"
            "return m.length ? m[0].startTime : null;")
BYTES = ("return [...performance.getEntriesByType('navigation'),"
         "...performance.getEntriesByType('resource')]"
         ".filter(e => !e.name.includes('/api/v1') && !e.name.includes('/master/'))"
         ".reduce((n, e) => n + e.decodedBodySize, 0)")


def known_tasks(cluster: Cluster) -> int:
    answer = requests.post(cluster.master_url + "/api/v1", json={"type": "GET_TASKS"},
                           timeout=30).json()["get_tasks"]
    return sum(len(answer.get(k, [])) for k in ("tasks", "completed_tasks"))


def launch_many(cluster: Cluster, count: int) -> Subscription:
    api = cluster.master_url + "/api/v1/scheduler"
    sub = Subscription(api, {"type": "SUBSCRIBE", "subscribe": {"framework_info": {
        "user": "root", "name": "bench-webui"}}})
    framework_id = sub.take(lambda e: e["type"] == "SUBSCRIBED")["subscribed"][
        "framework_id"]["value"]
    launched = 0
    while launched < count:
        for offer in sub.take_offers(timeout=60):
            cpus = next(r["scalar"]["value"] for r in offer["resources"] if r["name"] == "cpus")
            batch = min(count - launched, int(cpus / 0.01) - 1, 200)
            tasks = [{"name": f"t{launched + i}", "task_id": {"value": f"t{launched + i}"},
                      "agent_id": offer["agent_id"], "command": {"value": "true"},
                      "resources": [
                          {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.01}},
                          {"name": "mem", "type": "SCALAR", "scalar": {"value": 1}}]}
                     for i in range(max(batch, 0))]
            body = {"framework_id": {"value": framework_id}, "type": "ACCEPT",
                    "accept": {"offer_ids": [offer["id"]], "operations": [
                        {"type": "LAUNCH", "launch": {"task_infos": tasks}}] if tasks else []}}
            assert post(api, body, sub.stream_id)[0] == 202
            launched += len(tasks)
    deadline = time.monotonic() + 600
    while known_tasks(cluster) < count and time.monotonic() < deadline:
        time.sleep(1)
    return sub


def measure(browser: Any, url: str, loads: int) -> tuple[float, int]:
    times = []
    size = 0
    for _ in range(loads):
        browser.get("about:blank")
        browser.get(url)
        times.append(float(wait_js(browser, RENDERED, "the first render", timeout=60)))
        size = int(browser.execute_script(BYTES))
    return statistics.median(times), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--loads", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work_dir, running_cluster(work_dir) as cluster, \
            chromium() as browser:
        pages = {"overview": cluster.master_url + "/", "tasks": cluster.master_url + "/#/tasks"}
        empty = {name: measure(browser, url, args.loads) for name, url in pages.items()}
        started = time.monotonic()
        sub = launch_many(cluster, args.tasks)
        print(f"{known_tasks(cluster)} tasks known to the master after "
              f"{time.monotonic() - started:.0f} s")
        try:
            full = {name: measure(browser, url, args.loads) for name, url in pages.items()}
        finally:
            sub.close()
    for name in pages:
        (base, _), (with_tasks, size) = empty[name], full[name]
        print(f"{name:9s} first render: {with_tasks:7.1f} ms with {args.tasks} tasks, "
              f"{base:7.1f} ms with none (x{with_tasks / base:.2f}); page {size / 1024:.0f} KB "
              f"(target: < 1000 ms, < 300 KB)")


if __name__ == "__main__":
    main()
