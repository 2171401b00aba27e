"""Resource arithmetic, parsing and rendering, as Mesos defines them.

A :class:`Resources` maps a key ``(name, reservations)`` to a value:

- scalars are kept as integer thousandths, because Mesos rounds every scalar to 3 decimal
  digits (fixed point); integer arithmetic never drifts;
- ranges are a sorted tuple of disjoint inclusive ``(begin, end)`` pairs;
- sets are a frozenset of strings.

``reservations`` is the reservation stack (``()`` for unreserved, the ``*`` role). The first entry
may be STATIC, the others are DYNAMIC, each role refining the one before. Values are immutable,
so a ``Resources`` can be shared; the arithmetic returns new objects.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import ItemsView, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from agent_runtime.errors import BadRequest
from agent_runtime.proto import mesos_pb2
from agent_runtime.resource_text import text_protos
from agent_runtime.resource_values import Range as Range
from agent_runtime.resource_values import Ranges as Ranges
from agent_runtime.resource_values import merge_ranges, ranges_contain, subtract_ranges
from agent_runtime.resource_values import to_millis as to_millis
from agent_runtime.roles import validate_role as validate_role

Value = int | Ranges | frozenset[str]

STATIC = mesos_pb2.Resource.ReservationInfo.STATIC
DYNAMIC = mesos_pb2.Resource.ReservationInfo.DYNAMIC


@dataclass(frozen=True, slots=True)
class Reservation:
    role: str
    type: int = STATIC
    principal: str = ""
    labels: tuple[tuple[str, str], ...] = ()


Key = tuple[str, tuple[Reservation, ...]]

_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-/]+$")


class Resources(Mapping[Key, Value]):
    """An immutable bag of resources."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[Key, Value] | None = None) -> None:
        self._items: dict[Key, Value] = {}
        if items:
            for key, value in items.items():
                if not _is_empty(value):
                    self._items[key] = value

    # Mapping protocol ---------------------------------------------------------------------
    def __getitem__(self, key: Key) -> Value:
        return self._items[key]

    def __iter__(self) -> Iterator[Key]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Resources({self.text()!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Resources) and self._items == other._items

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    # Arithmetic ---------------------------------------------------------------------------
    def __add__(self, other: Resources) -> Resources:
        items = dict(self._items)
        for key, value in other._items.items():
            _merge_into(items, key, value)
        return Resources._of(items)  # a sum of non-empty values is never empty

    @classmethod
    def sum(cls, bags: Iterable[Resources]) -> Resources:
        """``a + b + ...`` without copying the running total at every step (100,000 tasks)."""
        items: dict[Key, Value] = {}
        for bag in bags:
            for key, value in bag._items.items():
                mine = items.get(key)
                if mine is None:
                    items[key] = value
                elif type(value) is int:  # most of them, added without a call
                    items[key] = mine + value  # type: ignore[operator]
                else:
                    _merge_into(items, key, value)
        return cls._of(items)

    @classmethod
    def _of(cls, items: dict[Key, Value]) -> Resources:
        """A bag over ``items`` as they are: the caller knows none of its values is empty."""
        out = cls.__new__(cls)
        out._items = items
        return out

    def __sub__(self, other: Resources) -> Resources:
        items = dict(self._items)
        for key, value in other._items.items():
            mine = items.get(key)
            if mine is None:
                continue
            if isinstance(value, int):
                items[key] = max(0, mine - value)  # type: ignore[operator]
            elif isinstance(value, frozenset):
                items[key] = mine - value  # type: ignore[operator]
            else:
                items[key] = subtract_ranges(mine, value)  # type: ignore[arg-type]
        return Resources(items)

    def contains(self, other: Resources) -> bool:
        for key, value in other._items.items():
            mine = self._items.get(key)
            if mine is None:
                return False
            if isinstance(value, int):
                if mine < value:  # type: ignore[operator]
                    return False
            elif isinstance(value, frozenset):
                if not value <= mine:  # type: ignore[operator]
                    return False
            elif not ranges_contain(mine, value):  # type: ignore[arg-type]
                return False
        return True

    # Queries ------------------------------------------------------------------------------
    def scalar(self, name: str) -> float:
        """Total of a scalar across reservations, in its unit (e.g. MB for mem)."""
        total = 0
        for (key_name, _), value in self._items.items():
            if key_name == name and isinstance(value, int):
                total += value
        return total / 1000

    def scalars(self) -> dict[str, int]:
        """Totals in thousandths, per scalar name (the quantities DRF shares are made of)."""
        out: dict[str, int] = {}
        for (name, _), value in self._items.items():
            if isinstance(value, int):
                out[name] = out.get(name, 0) + value
        return out

    def filter(self, predicate: Any) -> Resources:
        return Resources({k: v for k, v in self._items.items() if predicate(k)})

    def unreserved(self) -> Resources:
        return self.filter(lambda key: not key[1])

    def reserved(self, role: str | None = None) -> Resources:
        if role is None:
            return self.filter(lambda key: bool(key[1]))
        return self.filter(lambda key: bool(key[1]) and key[1][-1].role == role)

    def allocatable_to(self, role: str) -> Resources:
        """What an offer to ``role`` may hold: unreserved, or reserved to it or an ancestor."""

        def ok(key: Key) -> bool:
            if not key[1]:
                return True
            owner = key[1][-1].role
            return owner == role or role.startswith(owner + "/")

        return self.filter(ok)

    def roles(self) -> set[str]:
        return {key[1][-1].role for key in self._items if key[1]}

    # Fast paths for the allocator -----------------------------------------------------------
    def items(self) -> ItemsView[Key, Value]:
        # The dict's own view: the Mapping mixin's would call __getitem__ once per key.
        return self._items.items()

    def quantities(self) -> tuple[dict[str, int], dict[str, int], tuple[str, ...]]:
        """In one pass: scalar totals per name (as :meth:`scalars`), the unreserved scalars, and
        the roles that hold reservations here (the allocator runs this once per offer)."""
        scalars: dict[str, int] = {}
        unreserved: dict[str, int] = {}
        owners: list[str] = []
        for (name, reservations), value in self._items.items():
            if reservations:
                owner = reservations[-1].role
                if owner not in owners:
                    owners.append(owner)
            if isinstance(value, int):
                scalars[name] = scalars.get(name, 0) + value
                if not reservations:
                    unreserved[name] = value
        return scalars, unreserved, tuple(owners)

    # Rendering ----------------------------------------------------------------------------
    def text(self) -> str:
        parts = []
        for (name, reservations), value in sorted(self._items.items(), key=_sort_key):
            role = f"({reservations[-1].role})" if reservations else ""
            parts.append(f"{name}{role}:{_value_text(value)}")
        return ";".join(parts)

    def flat(self) -> dict[str, Any]:
        """The flat JSON object of Mesos's state endpoints (cpus/gpus/mem/disk always there)."""
        out: dict[str, Any] = {"cpus": 0.0, "gpus": 0.0, "mem": 0.0, "disk": 0.0}
        merged: dict[str, Value] = {}
        for (name, _), value in self._items.items():
            _merge_into(merged, name, value)
        for name, value in merged.items():
            out[name] = value / 1000 if isinstance(value, int) else _value_text(value)
        return out

    def to_proto(
        self, allocation_role: str | None = None
    ) -> list[mesos_pb2.Resource]:
        out = []
        for (name, reservations), value in sorted(self._items.items(), key=_sort_key):
            res = mesos_pb2.Resource(name=name)
            if isinstance(value, int):
                res.type = mesos_pb2.Value.SCALAR
                res.scalar.value = value / 1000
            elif isinstance(value, frozenset):
                res.type = mesos_pb2.Value.SET
                res.set.item.extend(sorted(value))
            else:
                res.type = mesos_pb2.Value.RANGES
                for begin, end in value:
                    res.ranges.range.add(begin=begin, end=end)
            res.role = reservations[-1].role if reservations else "*"
            for reservation in reservations:
                info = res.reservations.add(type=reservation.type, role=reservation.role)
                if reservation.principal:
                    info.principal = reservation.principal
                for k, v in reservation.labels:
                    info.labels.labels.add(key=k, value=v)
            if allocation_role is not None:
                res.allocation_info.role = allocation_role
            out.append(res)
        return out

    # Construction -------------------------------------------------------------------------
    @classmethod
    def from_proto(cls, resources: Iterable[mesos_pb2.Resource]) -> Resources:
        """Validate and convert protobuf resources; bad ones raise :class:`BadRequest`."""
        items: dict[Key, Value] = {}
        for res in resources:
            key = _key_of(res)
            value = _value_of(res)
            if not _is_empty(value):
                _merge_into(items, key, value)
        return cls._of(items)

    @classmethod
    def scalar_of(cls, name: str, value: float, role: str = "*") -> Resources:
        reservations = () if role == "*" else (Reservation(role),)
        return cls({(name, reservations): to_millis(value)})


def _merge_into(items: dict[Any, Value], key: Any, value: Value) -> None:
    """Add a non-empty ``value`` into ``items``: scalars sum, sets and ranges unite."""
    mine = items.get(key)
    if mine is None:
        items[key] = value
    elif isinstance(value, int):
        items[key] = mine + value  # type: ignore[operator]
    elif isinstance(value, frozenset):
        items[key] = mine | value  # type: ignore[operator]
    else:
        items[key] = merge_ranges(mine + value)  # type: ignore[operator, arg-type]


def _sort_key(item: tuple[Key, Value]) -> tuple[int, str, str]:
    (name, reservations), _ = item
    order = {"cpus": 0, "gpus": 1, "mem": 2, "disk": 3, "ports": 4}.get(name, 5)
    return (order, name, reservations[-1].role if reservations else "")


def _is_empty(value: Value) -> bool:
    if isinstance(value, int):
        return value <= 0
    return not value


def _value_text(value: Value) -> str:
    if isinstance(value, int):
        return f"{value / 1000:.15g}"  # as Mesos: digits10 significant digits
    if isinstance(value, frozenset):
        return "{" + ",".join(sorted(value)) + "}"
    return "[" + ",".join(f"{b}-{e}" for b, e in value) + "]"


def _key_of(res: mesos_pb2.Resource) -> Key:
    if not res.name or not _NAME_RE.match(res.name):
        raise BadRequest(f"invalid resource name {res.name!r}")
    reservations: list[Reservation] = []
    if res.reservations:
        for i, info in enumerate(res.reservations):
            kind = info.type if info.HasField("type") else (STATIC if i == 0 else DYNAMIC)
            if kind == STATIC and i > 0:
                raise BadRequest(f"resource {res.name}: only the first reservation may be STATIC")
            if i > 0 and not info.role.startswith(reservations[-1].role + "/"):
                raise BadRequest(
                    f"resource {res.name}: reservation role {info.role!r} does not refine"
                    f" {reservations[-1].role!r} (it must be a sub-role)"
                )
            labels = tuple((label.key, label.value) for label in info.labels.labels)
            reservations.append(Reservation(info.role, kind, info.principal, labels))
    elif res.HasField("role") and res.role != "*":
        if res.HasField("reservation"):
            labels = tuple((label.key, label.value) for label in res.reservation.labels.labels)
            reservations.append(Reservation(res.role, DYNAMIC, res.reservation.principal, labels))
        else:
            reservations.append(Reservation(res.role))
    for reservation in reservations:
        validate_role(reservation.role)
        if reservation.role == "*":
            raise BadRequest(f"resource {res.name}: cannot reserve for role '*'")
    return (res.name, tuple(reservations))


def _value_of(res: mesos_pb2.Resource) -> Value:
    if res.type == mesos_pb2.Value.SCALAR:
        if not res.HasField("scalar"):
            raise BadRequest(f"resource {res.name}: SCALAR without 'scalar'")
        value = res.scalar.value
        if math.isnan(value) or math.isinf(value):
            raise BadRequest(f"resource {res.name}: scalar must be finite, got {value}")
        if value < 0:
            raise BadRequest(f"resource {res.name}: scalar must not be negative, got {value}")
        if math.isinf(value * 1000):  # finite, but too large for fixed-point thousandths
            raise BadRequest(f"resource {res.name}: scalar {value} is too large")
        if res.name == "gpus" and value != int(value):
            raise BadRequest(f"resource gpus: must be a whole number, got {value}")
        return to_millis(value)
    if res.type == mesos_pb2.Value.RANGES:
        pairs = []
        for r in res.ranges.range:
            if r.begin > r.end:
                raise BadRequest(f"resource {res.name}: range {r.begin}-{r.end} is inverted")
            pairs.append((r.begin, r.end))
        return merge_ranges(pairs)
    if res.type == mesos_pb2.Value.SET:
        items = list(res.set.item)
        if len(set(items)) != len(items):
            raise BadRequest(f"resource {res.name}: set has duplicate items")
        return frozenset(items)
    raise BadRequest(f"resource {res.name}: unsupported type {res.type}")


def parse(text: str, default_role: str = "*") -> Resources:
    """Parse ``--resources``: the text form (``cpus:4;ports:[31000-32000]``) or a JSON array."""
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            items = json.loads(stripped, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            raise BadRequest(f"resources: invalid JSON: {exc}") from exc
        from agent_runtime.codec import jsonpb  # local: codec imports this module's protos

        if not isinstance(items, list):
            raise BadRequest("resources: JSON form must be an array of Resource objects")
        protos = [jsonpb.parse_dict(item, mesos_pb2.Resource) for item in items]
        for proto in protos:
            if not proto.HasField("role") and not proto.reservations and default_role != "*":
                proto.role = default_role
        return Resources.from_proto(protos)
    return Resources.from_proto(text_protos(stripped, default_role))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")
