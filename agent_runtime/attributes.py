"""Agent attributes as the state endpoints render them (flat: ``{"rack": "r1", "level": 3.0}``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agent_runtime.proto import mesos_pb2


def flat_json(attributes: Iterable[mesos_pb2.Attribute]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attribute in attributes:
        if attribute.type == mesos_pb2.Value.SCALAR:
            out[attribute.name] = attribute.scalar.value
        elif attribute.type == mesos_pb2.Value.RANGES:
            spans = ",".join(f"{r.begin}-{r.end}" for r in attribute.ranges.range)
            out[attribute.name] = f"[{spans}]"
        elif attribute.type == mesos_pb2.Value.SET:
            out[attribute.name] = "{" + ",".join(attribute.set.item) + "}"
        else:
            out[attribute.name] = attribute.text.value
    return out
