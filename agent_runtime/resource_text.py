"""The text form of ``--resources`` (``cpus:4;mem(role):512;ports:[31000-32000];x:{a,b}``), read
into ``Resource`` messages; :func:`agent_runtime.resources.parse` validates and adds them up."""

from __future__ import annotations

import re
from collections.abc import Iterator

from agent_runtime.errors import BadRequest
from agent_runtime.proto import mesos_pb2

_TEXT_ITEM_RE = re.compile(r"^\s*([^:(\s]+)\s*(?:\(([^)]*)\))?\s*:\s*(.+?)\s*$")


def text_protos(text: str, default_role: str = "*") -> Iterator[mesos_pb2.Resource]:
    """One message per ``;``-separated item, made as it is reached (so that a bad item is
    reported after the validation errors of those before it, as when each was added alone)."""
    for item in filter(None, (part.strip() for part in text.split(";"))):
        match = _TEXT_ITEM_RE.match(item)
        if not match:
            raise BadRequest(f"resources: cannot parse {item!r} (expected name[(role)]:value)")
        name, role, raw = match.groups()
        role = role if role is not None else default_role
        res = mesos_pb2.Resource(name=name)
        if role != "*":
            res.role = role
        if raw.startswith("["):
            res.type = mesos_pb2.Value.RANGES
            body = raw.strip("[] ")
            for span in filter(None, (s.strip() for s in body.split(","))):
                begin, dash, end = span.partition("-")
                try:
                    res.ranges.range.add(begin=int(begin), end=int(end if dash else begin))
                except ValueError as exc:
                    raise BadRequest(f"resources: invalid range {span!r} in {item!r}") from exc
        elif raw.startswith("{"):
            res.type = mesos_pb2.Value.SET
            res.set.item.extend(s.strip() for s in raw.strip("{} ").split(",") if s.strip())
        else:
            res.type = mesos_pb2.Value.SCALAR
            try:
                res.scalar.value = float(raw)
            except ValueError as exc:
                raise BadRequest(f"resources: invalid scalar {raw!r} in {item!r}") from exc
        yield res


__all__ = ["text_protos"]
