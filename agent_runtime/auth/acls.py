"""The local authorizer: Mesos's ``--acls`` JSON and its evaluation.

``{"permissive": true, "<action>": [{"principals": ENTITY, "<object>": ENTITY}, ...]}`` where
an ENTITY is ``{"values": [...]}`` or ``{"type": "ANY" | "NONE"}``. For one request, entries
are tried in order; the first whose subject and object both *match* decides. ANY and NONE
match every value, ``values`` matches the values listed; the decision is "allowed" unless the
entry's subject or object is NONE. A request without a principal matches only ANY and NONE
entries. When no entry matches, ``permissive`` (default true) decides.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent_runtime.auth.credentials import read_flag
from agent_runtime.errors import FlagError, Forbidden

# Each action we authorize, and the name of its object in the ACL JSON (Mesos's acls.proto).
OBJECTS: Mapping[str, str] = {
    "register_frameworks": "roles",
    "run_tasks": "users",
    "teardown_frameworks": "framework_principals",
    "reserve_resources": "roles",
    "unreserve_resources": "reserver_principals",
    "update_quotas": "roles",
    "get_quotas": "roles",
    "update_weights": "roles",
    "view_roles": "roles",
    "view_frameworks": "users",
    "view_tasks": "users",
    "view_executors": "users",
    "view_flags": "flags",
    "access_sandboxes": "users",
    "access_mesos_logs": "logs",
    "get_endpoints": "paths",
    "register_agents": "agents",
}
ANY, NONE, SOME = "ANY", "NONE", "SOME"


@dataclass(frozen=True)
class Entity:
    kind: str  # ANY, NONE or SOME
    values: frozenset[str] = frozenset()

    def matches(self, value: str | None) -> bool:
        if self.kind != SOME:
            return True
        return value is not None and value in self.values

    @classmethod
    def parse(cls, data: Any, where: str) -> Entity:
        if not isinstance(data, dict):
            raise FlagError(f"--acls: {where} must be an object with 'values' or 'type'")
        if "values" in data:
            values = data["values"]
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise FlagError(f"--acls: {where}.values must be a list of strings")
            return cls(SOME, frozenset(values))
        kind = data.get("type", ANY)
        if kind not in (ANY, NONE):
            raise FlagError(f"--acls: {where}.type must be ANY or NONE, not {kind!r}")
        return cls(kind)


@dataclass(frozen=True)
class Rule:
    subject: Entity
    object: Entity


@dataclass(frozen=True)
class Authorizer:
    """What ``--acls`` allows. The default (no flag) is permissive with no rules: everything
    is allowed, as Mesos without ``--acls``."""

    permissive: bool = True
    rules: Mapping[str, tuple[Rule, ...]] = field(default_factory=dict)

    def allowed(self, action: str, principal: str | None, obj: str | None = None) -> bool:
        for rule in self.rules.get(action, ()):
            if rule.subject.matches(principal) and rule.object.matches(obj):
                return NONE not in (rule.subject.kind, rule.object.kind)
        return self.permissive

    def require(self, action: str, principal: str | None, obj: str | None = None) -> None:
        """Forbidden (403) naming the action, the principal and the object, unless allowed."""
        if not self.allowed(action, principal, obj):
            who = f"principal '{principal}'" if principal else "an anonymous caller"
            what = f" on '{obj}'" if obj is not None else ""
            raise Forbidden(f"Not authorized: {who} may not {action}{what}")


def load_acls(value: str | None) -> Authorizer:
    if not value:
        return Authorizer()
    try:
        data = json.loads(read_flag(value, "acls"))
    except ValueError as exc:
        raise FlagError(f"--acls: invalid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise FlagError("--acls: expected a JSON object")
    permissive = data.get("permissive", True)
    if not isinstance(permissive, bool):
        raise FlagError("--acls: 'permissive' must be true or false")
    rules: dict[str, tuple[Rule, ...]] = {}
    for action, entries in data.items():
        if action == "permissive":
            continue
        obj = OBJECTS.get(action)
        if obj is None:
            raise FlagError(f"--acls: unknown action {action!r} (known: {', '.join(OBJECTS)})")
        if not isinstance(entries, list):
            raise FlagError(f"--acls: {action} must be a list of rules")
        parsed = []
        for index, entry in enumerate(entries):
            where = f"{action}[{index}]"
            if not isinstance(entry, dict) or set(entry) - {"principals", obj}:
                raise FlagError(f"--acls: {where} takes 'principals' and '{obj}' only")
            parsed.append(Rule(Entity.parse(entry.get("principals", {}), f"{where}.principals"),
                               Entity.parse(entry.get(obj, {}), f"{where}.{obj}")))
        rules[action] = tuple(parsed)
    return Authorizer(permissive, rules)
