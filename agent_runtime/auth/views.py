"""What a caller may see of the state: the ``view_frameworks``, ``view_tasks`` and
``view_executors`` ACLs applied to every state answer of both daemons, as Mesos filters them.

The filter works on the answer's shape, not on its endpoint, so endpoints added later are
covered too: in any JSON object (``/master/state``, ``/master/frameworks``, ``/master/tasks``,
the agent's ``/state``, the v1 operator API's JSON, ...), a list under a key named
``frameworks`` or ``*_frameworks`` holds frameworks, ``tasks`` or ``*_tasks`` tasks, and
``executors`` or ``*_executors`` executors (Mesos's names, in both the v1 messages and the old
JSON). A v1 answer in protobuf is decoded into the daemon's ``Response``, filtered the same way
and encoded again. The object of each ACL is a user, as Mesos's: the framework's
``FrameworkInfo.user``; a task's ``user`` (else its framework's); an executor's
``CommandInfo.user`` (else its framework's). Nothing is parsed when no view rule exists.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web
from google.protobuf.message import DecodeError, Message

from agent_runtime.auth.acls import Authorizer
from agent_runtime.codec import jsonpb
from agent_runtime.http_util import JSON, PROTOBUF

ACTIONS = ("view_frameworks", "view_tasks", "view_executors")
Allowed = Callable[[str, str | None], bool]


def needed(authorizer: Authorizer) -> bool:
    """Whether any answer can lose anything (a permissive authorizer without view rules lets
    every caller see everything, so answers go out untouched)."""
    return not authorizer.permissive or any(authorizer.rules.get(a) for a in ACTIONS)


def _kind(key: str) -> str | None:
    for kind in ("frameworks", "tasks", "executors"):
        if key == kind or key.endswith("_" + kind):
            return kind
    return None


def _framework_user(item: dict[str, Any]) -> str | None:
    info = item.get("framework_info")
    user = info.get("user") if isinstance(info, dict) else item.get("user")
    return user if isinstance(user, str) else None


def _executor_user(item: dict[str, Any]) -> str | None:
    info = item.get("executor_info")
    command = (info if isinstance(info, dict) else item).get("command")
    user = command.get("user") if isinstance(command, dict) else None
    return user if isinstance(user, str) and user else None


def _visible(kind: str, item: dict[str, Any], owner: str | None, allowed: Allowed
             ) -> tuple[bool, str | None]:
    """Whether ``item`` stays, and the framework user its children inherit."""
    if kind == "frameworks":
        user = _framework_user(item)
        return allowed("view_frameworks", user), user
    if kind == "tasks":
        user = item.get("user") if isinstance(item.get("user"), str) else None
        return allowed("view_tasks", user or owner), owner
    return allowed("view_executors", _executor_user(item) or owner), owner


def prune(value: Any, allowed: Allowed, owner: str | None = None) -> Any:
    """``value`` without what the caller may not view (a new structure; ``value`` is kept)."""
    if isinstance(value, list):
        return [prune(item, allowed, owner) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, child in value.items():
        kind = _kind(key)
        if kind is None or not isinstance(child, list):
            out[key] = prune(child, allowed, owner)
            continue
        kept = []
        for item in child:
            if not isinstance(item, dict):  # e.g. /roles lists framework ids, not frameworks
                kept.append(item)
                continue
            visible, inherited = _visible(kind, item, owner, allowed)
            if visible:
                kept.append(prune(item, allowed, inherited))
        out[key] = kept
    return out


def _jsonp(text: str) -> tuple[str, str, str]:
    """``(before, json, after)`` of a ``callback(...);`` answer."""
    start, end = text.index("("), text.rindex(")")
    return text[:start + 1], text[start + 1:end], text[end:]


def filter_response(response: web.StreamResponse, allowed: Allowed,
                    response_type: type[Message]) -> web.StreamResponse:
    """The same answer with what the caller may not view taken out. Streams (already sent as
    they go) and answers that are not state pass unchanged."""
    if not isinstance(response, web.Response) or response.status != 200 or not isinstance(
            response.body, bytes) or not response.body:
        return response
    media = response.content_type
    if media == PROTOBUF:
        message = response_type()
        try:
            message.ParseFromString(response.body)
        except DecodeError:
            return response
        pruned = jsonpb.parse_dict(prune(jsonpb.to_dict(message), allowed), response_type)
        response.body = pruned.SerializeToString()
    elif media == JSON:
        response.text = json.dumps(prune(json.loads(response.body), allowed),
                                   separators=(",", ":"))
    elif media == "text/javascript":
        before, body, after = _jsonp(response.body.decode())
        response.text = before + json.dumps(prune(json.loads(body), allowed),
                                            separators=(",", ":")) + after
    return response
