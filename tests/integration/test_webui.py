"""The master's web UI in a real headless chromium: every page renders the cluster this test
builds (two agents, a framework with a running task and its offers, a role with a weight, a
maintenance window), the task's stdout is tailed live through the master's relay, the page
follows the operator event stream without reloading, its weight and first render come from the
browser's Performance API, and it works with HTTP authentication on.
Screenshots of every page are saved under the test's tmp dir."""

from __future__ import annotations

import base64
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from tests.harness.browser import chromium, wait_js, wait_text
from tests.harness.cluster import Cluster, running_cluster
from tests.harness.curl import Running, launch_task
from tests.harness.wait import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MAX_PAGE_BYTES = 300 * 1024
FAR_FUTURE_NS = 4_000_000_000 * 10**9  # a maintenance window that never starts in a test


def operator(cluster: Cluster, body: dict[str, Any]) -> None:
    response = requests.post(cluster.master_url + "/api/v1", json=body, timeout=10)
    assert response.status_code == 200, response.text


@dataclass
class Built:
    cluster: Cluster
    running: Running
    browser: Any
    # What the page showed of a task that lived and ended while it watched, and how many
    # times it loaded and subscribed meanwhile.
    watched: dict[str, Any]


@pytest.fixture(scope="module")
def built() -> Iterator[Built]:
    with tempfile.TemporaryDirectory() as work_dir, \
            running_cluster(work_dir, agents=2) as cluster, chromium() as browser:
        # The page is open on the tasks before any framework comes: what it shows next
        # comes from the event stream.
        show(browser, cluster, "tasks")
        launch_task(cluster, "echo bye", task_id="short-lived", name="short",
                    state="TASK_FINISHED").close()
        # Sleeps past every test of the module, however slow the machine.
        running = launch_task(cluster, "echo hello-from-the-task; sleep 3600")
        try:
            watched = {
                "short": wait_text(browser, "tr[data-task='short-lived']",
                                   lambda t: "TASK_FINISHED" in t, "the short task's end"),
                "running": wait_text(browser, f"tr[data-task='{running.task_id}']",
                                     lambda t: "TASK_RUNNING" in t, "the running task"),
                "seen": browser.execute_script("return window.clusterStore.seen"),
                "loads": browser.execute_script(
                    "return performance.getEntriesByType('navigation').length"),
            }
            operator(cluster, {"type": "UPDATE_WEIGHTS", "update_weights": {
                "weight_infos": [{"role": "analytics", "weight": 2.5}]}})
            operator(cluster, {"type": "UPDATE_MAINTENANCE_SCHEDULE",
                               "update_maintenance_schedule": {"schedule": {"windows": [{
                                   "machine_ids": [{"hostname": "rack9.example",
                                                    "ip": "10.9.9.9"}],
                                   "unavailability": {"start": {
                                       "nanoseconds": FAR_FUTURE_NS}}}]}}})
            yield Built(cluster, running, browser, watched)
        finally:
            running.close()


def show(browser: Any, cluster: Cluster, hash_path: str) -> None:
    browser.get(f"{cluster.master_url}/#/{hash_path}")
    wait_text(browser, "#status", lambda t: t == "live", "the event stream")


def test_every_page_renders_the_cluster(built: Built,
                                        tmp_path: Path) -> None:
    cluster, running, browser = built.cluster, built.running, built.browser
    agents = requests.get(cluster.master_url + "/master/slaves", timeout=5).json()["slaves"]
    agent_ids = {a["id"] for a in agents}
    assert len(agent_ids) == 2

    show(browser, cluster, "")
    wait_text(browser, "#page-overview .stats", lambda t: "2\nagents" in t, "two agents")
    wait_text(browser, "#page-overview table.tasks", lambda t: "TASK_RUNNING" in t, "the task")
    # uPlot drew both charts (a canvas each), with the totals of both agents: 8 cpus.
    charts = "return document.querySelectorAll('.chart canvas').length"
    assert wait_js(browser, charts, "the charts") == 2
    wait_text(browser, "#page-overview .stats", lambda t: "0.50 / 8" in t, "cpus in use")
    browser.save_screenshot(str(tmp_path / "overview.png"))

    show(browser, cluster, "agents")
    text = wait_text(browser, "#agents", lambda t: all(i in t for i in agent_ids), "agents")
    assert "active" in text
    browser.save_screenshot(str(tmp_path / "agents.png"))

    show(browser, cluster, f"agents/{running.agent_id}")
    wait_text(browser, "#page-agent", lambda t: running.task_id in t, "the agent's task")
    browser.save_screenshot(str(tmp_path / "agent.png"))

    show(browser, cluster, "frameworks")
    wait_text(browser, "#frameworks", lambda t: "endpoints" in t and running.framework_id in t,
              "the framework")
    browser.save_screenshot(str(tmp_path / "frameworks.png"))

    show(browser, cluster, "roles")
    wait_text(browser, "#roles", lambda t: "analytics\t2.5" in t and "cpus: 0.50" in t,
              "the weighted role and the allocation of '*'")
    browser.save_screenshot(str(tmp_path / "roles.png"))

    show(browser, cluster, "tasks")
    row = wait_text(browser, f"tr[data-task='{running.task_id}']",
                    lambda t: "TASK_RUNNING" in t, "the task's row")
    assert "endpoints" in row and "64 MB" in row
    browser.save_screenshot(str(tmp_path / "tasks.png"))

    show(browser, cluster, "offers")
    wait_text(browser, "#offers", lambda t: "endpoints" in t, "the framework's offers")
    browser.save_screenshot(str(tmp_path / "offers.png"))

    show(browser, cluster, "maintenance")
    wait_text(browser, "#windows", lambda t: "rack9.example (10.9.9.9)" in t, "the window")
    browser.save_screenshot(str(tmp_path / "maintenance.png"))

    assert sorted(p.name for p in tmp_path.glob("*.png")) == sorted(
        f"{n}.png" for n in ("overview", "agents", "agent", "frameworks", "roles", "tasks",
                             "offers", "maintenance"))
    assert all(p.stat().st_size > 10_000 for p in tmp_path.glob("*.png"))


def test_the_sandbox_browser_tails_the_task_log(built: Built,
                                                tmp_path: Path) -> None:
    cluster, running, browser = built.cluster, built.running, built.browser
    show(browser, cluster, f"tasks/{running.framework_id}/{running.task_id}")
    wait_text(browser, "#page-task pre.log", lambda t: "hello-from-the-task" in t, "stdout")
    browser.save_screenshot(str(tmp_path / "task.png"))

    sandbox = f"/frameworks/{running.framework_id}/executors/{running.task_id}/runs/latest"
    show(browser, cluster, f"sandbox/{running.agent_id}?path={quote(sandbox, safe='')}")
    wait_text(browser, "#files", lambda t: "stdout" in t and "stderr" in t, "the listing")
    show(browser, cluster, f"sandbox/{running.agent_id}?path={quote(sandbox, safe='')}"
                           "&file=stdout")
    wait_text(browser, "#page-sandbox pre.log", lambda t: "hello-from-the-task" in t, "tail")
    browser.save_screenshot(str(tmp_path / "sandbox.png"))
    # Live: a line written now shows up without reloading (a process appending to the file).
    state = [requests.get(f"http://127.0.0.1:{port}/state", timeout=5).json()
             for port in cluster.agent_ports]
    directory = next(e["directory"] for s in state for f in s["frameworks"]
                     for e in f["executors"] if e["id"] == running.task_id)
    with open(os.path.join(directory, "stdout"), "a") as stdout:
        stdout.write("a-line-written-later\n")
    wait_text(browser, "#page-sandbox pre.log", lambda t: "a-line-written-later" in t,
              "the new line")


def test_the_page_follows_the_event_stream(built: Built) -> None:
    watched = built.watched
    assert "short" in watched["short"] and "TASK_FINISHED" in watched["short"]
    assert "TASK_RUNNING" in watched["running"]
    # One load, one subscription: both tasks' lives came as events, not as reloads.
    assert watched["loads"] == 1 and watched["seen"]["SUBSCRIBED"] == 1
    assert watched["seen"]["TASK_ADDED"] >= 2 and watched["seen"]["TASK_UPDATED"] >= 4
    assert watched["seen"]["FRAMEWORK_ADDED"] >= 2


def test_page_weight_and_first_render(built: Built) -> None:
    cluster, browser = built.cluster, built.browser
    browser.get(cluster.master_url + "/")
    rendered = wait_js(browser, "const m = performance.getEntriesByName('cluster-rendered');"
                                "return m.length ? m[0].startTime : null;", "first render")
    entries = browser.execute_script(
        "return [...performance.getEntriesByType('navigation'), "
        "...performance.getEntriesByType('resource')]"
        ".map(e => [e.name, e.decodedBodySize])")
    page_bytes = sum(size for name, size in entries if "/api/v1" not in name)
    assert 50_000 < page_bytes < MAX_PAGE_BYTES, entries
    # The figure for 1,000 tasks is bench/webui_render.py's; here: it renders, and not
    # pathologically slowly, even in a browser sharing a loaded machine (CI).
    assert 0 < rendered < 30_000


def test_the_relay_refuses_what_a_stranger_sends(built: Built
                                                 ) -> None:
    cluster, running = built.cluster, built.running
    base = f"{cluster.master_url}/ui/agents"
    cases = {
        f"{base}/no-such-agent/files/read?path=/etc/passwd": 404,
        f"{base}/{running.agent_id}/files/read": 400,  # no path
        f"{base}/{running.agent_id}/files/read?path=/x&offset=abc": 400,
        f"{base}/{running.agent_id}/files/read?path=/x&length=1e9": 400,
        f"{base}/{running.agent_id}/files/delete?path=/x": 404,
        f"{base}/{running.agent_id}/files/read?path={'a' * 5000}": 400,
        f"{base}/{running.agent_id}/files/browse?path=/etc": 403,  # the agent's own refusal
        f"{base}/{running.agent_id}/files/read?path=/frameworks/../../../etc/passwd": 403,
        f"{cluster.master_url}/ui/static/../../master.py": 404,
        f"{cluster.master_url}/ui/static/%2e%2e/%2e%2e/master/http.py": 404,
    }
    for url, status in cases.items():
        response = requests.get(url, timeout=10)
        assert response.status_code == status, (url, response.status_code, response.text)
        assert "root:" not in response.text and "make_app" not in response.text
    # Nothing but the file call's own parameters reaches the agent.
    good = requests.get(f"{base}/{running.agent_id}/files/read", timeout=10, params={
        "path": f"/frameworks/{running.framework_id}/executors/{running.task_id}"
                "/runs/latest/stdout", "offset": "0", "jsonp": "evil"})
    assert good.status_code == 200 and "hello-from-the-task" in good.json()["data"]


def _basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


def signed_in(cluster: Cluster) -> None:
    """Waits for the agent to register, asking as the operator."""
    def registered() -> bool:
        answer = requests.get(cluster.master_url + "/master/slaves", timeout=5,
                              headers={"Authorization": _basic("ops", "s3cret")})
        return answer.ok and len(answer.json()["slaves"]) == 1
    wait_for(registered, timeout=60)


def test_the_ui_with_authentication(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text(json.dumps({"credentials": [
        {"principal": "ops", "secret": "s3cret"}]}))
    # A browser without credentials gets the master's challenge (and so its sign-in prompt)
    # for the page itself: checked with requests, as headless chromium holds a challenged
    # request open for a prompt nobody answers.
    auth = [f"--credentials={credentials}", "--authenticate_http_readonly",
            "--authenticate_http_readwrite"]
    # Started by hand: the harness's wait for agents reads /master/slaves without credentials.
    cluster = Cluster(str(tmp_path), agents=1, master_flags=auth)
    try:
        cluster.start_master(wait=False)
        cluster.start_agent(0)
        cluster.wait_master()
        signed_in(cluster)
        for path in ("/", "/ui/static/app.js", "/ui/agents/x/files/read?path=/a"):
            refused = requests.get(cluster.master_url + path, timeout=5)
            assert refused.status_code == 401, path
            assert refused.headers["WWW-Authenticate"].startswith("Basic realm=")
        assert requests.get(cluster.master_url + "/", timeout=5,
                            headers={"Authorization": _basic("ops", "s3cret")}).ok
        with chromium() as browser:
            # The browser signs in once; the page's own fetches then carry its credentials.
            host = cluster.master_url.removeprefix("http://")
            browser.get(f"http://ops:s3cret@{host}/")
            wait_text(browser, "#status", lambda t: t == "live", "the stream, signed in")
            wait_text(browser, "#page-overview .stats", lambda t: "1\nagents" in t, "agent")
            browser.save_screenshot(str(tmp_path / "signed-in.png"))
    finally:
        cluster.stop()
