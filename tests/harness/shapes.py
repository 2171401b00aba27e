"""Mesos's JSON shapes for the operator endpoints, and the check that an entry has them.

Key sets come from ``reference/mesos-features.md`` (3.2 and 3.3): every key Mesos always writes
must be there, and nothing but those and the ones Mesos writes only sometimes.
"""

from __future__ import annotations

from typing import Any

STATE_KEYS = {
    "version", "build_date", "build_time", "build_user", "git_sha", "git_branch", "git_tag",
    "start_time", "elected_time", "id", "pid", "hostname", "capabilities", "activated_slaves",
    "deactivated_slaves", "unreachable_slaves", "leader", "leader_info", "flags", "slaves",
    "recovered_slaves", "frameworks", "completed_frameworks", "orphan_tasks",
    "unregistered_frameworks",
}
STATE_OPTIONAL = {"domain", "cluster", "log_dir", "external_log_file"}
FRAMEWORK_KEYS = {
    "id", "name", "used_resources", "offered_resources", "capabilities", "hostname",
    "webui_url", "active", "connected", "recovered", "user", "failover_timeout", "checkpoint",
    "registered_time", "unregistered_time", "resources", "tasks", "unreachable_tasks",
    "completed_tasks", "offers", "executors",
}
FRAMEWORK_OPTIONAL = {"pid", "reregistered_time", "principal", "labels", "offer_constraints"}
TASK_KEYS = {
    "id", "name", "framework_id", "executor_id", "slave_id", "state", "resources", "role",
    "statuses",
}
TASK_OPTIONAL = {"limits", "user", "labels", "discovery", "container", "health_check"}
AGENT_KEYS = {
    "id", "hostname", "port", "attributes", "pid", "registered_time", "resources",
    "used_resources", "offered_resources", "reserved_resources", "unreserved_resources",
    "active", "deactivated", "version", "capabilities",
}
AGENT_OPTIONAL = {
    "domain", "drain_info", "reregistered_time", "reserved_resources_full",
    "unreserved_resources_full", "used_resources_full", "offered_resources_full",
}
VERSION_KEYS = {"version", "build_date", "build_time", "build_user", "git_sha", "git_branch",
                "git_tag"}
CLUSTER_RESOURCES = {"cpus": 4, "gpus": 0, "mem": 4096, "disk": 4096, "ports": "[31000-32000]"}
TASK_RESOURCES = {"cpus": 0.5, "gpus": 0, "mem": 64, "disk": 0}


def assert_keys(entry: dict[str, Any], required: set[str],
                optional: set[str] | frozenset[str] = frozenset()) -> None:
    missing = required - entry.keys()
    unknown = entry.keys() - required - optional
    assert not missing and not unknown, f"missing {sorted(missing)}, unknown {sorted(unknown)}"
