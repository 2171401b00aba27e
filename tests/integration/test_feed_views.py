"""The operator event stream under the view ACLs, on a real master and agent: each subscriber
sees only the frameworks and tasks it may view (SUBSCRIBED's state, TASK_ADDED, TASK_UPDATED,
FRAMEWORK_ADDED/REMOVED), as the state answers are filtered; an operator allowed everything
sees everything on the same master at the same time."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness.cluster import Cluster, running_cluster
from tests.harness.curl import Subscription, launch_task

SECRETS = {"ops": "o-secret", "viewer": "v-secret"}
# ops sees everything; viewer only what runs as 'nobody'; anyone else nothing.
VIEW = [{"principals": {"values": ["ops"]}, "users": {"type": "ANY"}},
        {"principals": {"values": ["viewer"]}, "users": {"values": ["nobody"]}},
        {"principals": {"type": "ANY"}, "users": {"type": "NONE"}}]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with tempfile.TemporaryDirectory() as work_dir:
        os.chmod(work_dir, 0o755)  # a task runs as 'nobody' below it
        credentials = os.path.join(work_dir, "credentials")
        with open(credentials, "w") as handle:
            json.dump({"credentials": [{"principal": p, "secret": s}
                                       for p, s in SECRETS.items()]}, handle)
        acls = os.path.join(work_dir, "acls")
        with open(acls, "w") as handle:
            json.dump({"view_frameworks": VIEW, "view_tasks": VIEW, "view_executors": VIEW},
                      handle)
        flags = [f"--credentials={credentials}", f"--acls={acls}"]
        with running_cluster(work_dir, master_flags=flags) as running:
            yield running


def feed(cluster: Cluster, principal: str) -> Subscription:
    return Subscription(cluster.master_url + "/api/v1", {"type": "SUBSCRIBE"},
                        auth=(principal, SECRETS[principal]))


def named(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]


def test_each_subscriber_sees_what_it_may_view(cluster: Cluster) -> None:
    ops, viewer = feed(cluster, "ops"), feed(cluster, "viewer")
    try:
        # A long filter: the rest of the agent must stay for the second framework.
        hidden = launch_task(cluster, "sleep 30", task_id="root-task", name="as-root",
                             refuse_seconds=3600)
        shown = launch_task(cluster, "sleep 30", task_id="nobody-task", name="as-nobody",
                            framework_info={"user": "nobody"})
        # A subscriber arriving now gets the state as it may see it.
        late = feed(cluster, "viewer")
        try:
            state = late.take(lambda e: e["type"] == "SUBSCRIBED")["subscribed"]["get_state"]
            assert [t["task_id"]["value"] for t in state["get_tasks"]["tasks"]] == [
                "nobody-task"]
            assert [f["framework_info"]["id"]["value"]
                    for f in state["get_frameworks"]["frameworks"]] == [shown.framework_id]
        finally:
            late.close()
        hidden.close()  # its task is killed and it is removed: ops hears it, viewer does not
        ops.take(lambda e: e["type"] == "FRAMEWORK_REMOVED" and e["framework_removed"][
            "framework_info"]["id"]["value"] == hidden.framework_id)
        shown.close()
        # Each stream is in order: once viewer has this, it has everything sent before it.
        viewer.take(lambda e: e["type"] == "FRAMEWORK_REMOVED" and e["framework_removed"][
            "framework_info"]["id"]["value"] == shown.framework_id)
        ops.take(lambda e: e["type"] == "FRAMEWORK_REMOVED" and e["framework_removed"][
            "framework_info"]["id"]["value"] == shown.framework_id)
    finally:
        ops.close()
        viewer.close()
    seen = json.dumps(viewer.events)
    assert hidden.framework_id not in seen and "root-task" not in seen
    assert [e["task_added"]["task"]["task_id"]["value"]
            for e in named(viewer.events, "TASK_ADDED")] == ["nobody-task"]
    updates = {(e["task_updated"]["status"]["task_id"]["value"], e["task_updated"]["state"])
               for e in named(viewer.events, "TASK_UPDATED")}
    assert {task for task, _ in updates} == {"nobody-task"}
    assert {state for _, state in updates} >= {"TASK_STARTING", "TASK_RUNNING"}
    assert [e["framework_added"]["framework"]["framework_info"]["id"]["value"]
            for e in named(viewer.events, "FRAMEWORK_ADDED")] == [shown.framework_id]
    assert named(viewer.events, "AGENT_ADDED") == named(ops.events, "AGENT_ADDED")
    everything = json.dumps(ops.events)
    assert "root-task" in everything and "nobody-task" in everything
    assert {e["task_added"]["task"]["task_id"]["value"]
            for e in named(ops.events, "TASK_ADDED")} == {"root-task", "nobody-task"}
    assert ("root-task", "TASK_RUNNING") in {
        (e["task_updated"]["status"]["task_id"]["value"], e["task_updated"]["state"])
        for e in named(ops.events, "TASK_UPDATED")}
    assert len(named(ops.events, "FRAMEWORK_REMOVED")) == 2
