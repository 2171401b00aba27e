"""Protobuf <-> JSON the way Mesos writes and reads it.

We do not use ``google.protobuf.json_format`` because Mesos's JSON differs from proto3 JSON:
64-bit integers are plain numbers (``"begin": 31000``, not ``"31000"``), field names are the
proto names (snake_case), and a single object is accepted where a list is expected (seed 004
sends ``"capabilities": {"type": ...}``). Enums are names, bytes are base64, NaN and Infinity
are rejected. Unknown fields are ignored, so newer clients keep working.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable
from typing import Any, TypeVar

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

from agent_runtime.errors import BadRequest

M = TypeVar("M", bound=Message)

_INT_TYPES = frozenset(
    {
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED32,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED32,
        FieldDescriptor.TYPE_SFIXED64,
    }
)
_FLOAT_TYPES = frozenset({FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT})
# Deepest message nesting accepted: protobuf's own decode limit (and picojson's, which Mesos
# parses JSON with), so whatever we accept as JSON also survives a binary round trip.
MAX_DEPTH = 100


# Message -> JSON ---------------------------------------------------------------------------


def _is_map(field: FieldDescriptor) -> bool:
    message_type = field.message_type
    return (
        message_type is not None
        and message_type.GetOptions().map_entry
        and field.is_repeated
    )


def _enum(field: FieldDescriptor) -> EnumDescriptor:
    enum_type = field.enum_type
    assert enum_type is not None, field.full_name
    return enum_type


def _message_type(field: FieldDescriptor) -> Descriptor:
    message_type = field.message_type
    assert message_type is not None, field.full_name
    return message_type


def _converter(field: FieldDescriptor) -> Callable[[Any], Any] | None:
    """How one value of ``field`` is written (None: as it is)."""
    kind = field.type
    if kind == FieldDescriptor.TYPE_MESSAGE:
        return to_dict
    if kind == FieldDescriptor.TYPE_ENUM:
        names = {number: value.name for number, value in _enum(field).values_by_number.items()}
        return lambda value: names.get(value, value)  # an unknown number stays a number
    if kind == FieldDescriptor.TYPE_BYTES:
        return lambda value: base64.b64encode(value).decode("ascii")
    return None


# Per field: its name, whether it is a map (1), repeated (2) or single (0), and the converter
# of its values. Worked out once per field, not per value: asking a descriptor (its options
# above all) is most of the time of writing 100,000 tasks' JSON.
_Plan = tuple[str, int, Callable[[Any], Any] | None]
_PLANS: dict[FieldDescriptor, _Plan] = {}


def _plan(field: FieldDescriptor) -> _Plan:
    plan = _PLANS.get(field)
    if plan is None:
        if _is_map(field):
            plan = (field.name, 1, _converter(_message_type(field).fields_by_name["value"]))
        else:
            plan = (field.name, 2 if field.is_repeated else 0, _converter(field))
        _PLANS[field] = plan
    return plan


def to_dict(message: Message) -> dict[str, Any]:
    """The set fields of ``message`` as a JSON-ready dict."""
    out: dict[str, Any] = {}
    for field, value in message.ListFields():
        name, shape, convert = _PLANS.get(field) or _plan(field)
        if shape == 1:
            out[name] = {k: convert(v) for k, v in value.items()} if convert else dict(value)
        elif shape == 2:
            out[name] = [convert(item) for item in value] if convert else list(value)
        else:
            out[name] = convert(value) if convert else value
    return out


def dumps(message: Message) -> bytes:
    """Compact JSON bytes: no newlines inside, which line-based RecordIO readers rely on."""
    return json.dumps(to_dict(message), separators=(",", ":"), allow_nan=False).encode()


# JSON -> Message ---------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def loads_json(body: bytes | str) -> Any:
    """``json.loads`` that refuses NaN/Infinity and names the problem."""
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"Failed to parse body into JSON: {exc}") from exc
    except RecursionError as exc:
        raise BadRequest("Failed to parse body into JSON: nested too deeply") from exc


def parse(body: bytes | str, cls: type[M]) -> M:
    data = loads_json(body)
    if not isinstance(data, dict):
        raise BadRequest(f"Expected a JSON object for {cls.DESCRIPTOR.name}")
    return parse_dict(data, cls)


def parse_dict(data: Any, cls: type[M]) -> M:
    message = cls()
    _fill(message, data, cls.DESCRIPTOR.name, 0)
    return message


def _field_by_json_key(descriptor: Descriptor, key: str) -> FieldDescriptor | None:
    field = descriptor.fields_by_name.get(key)
    if field is None:
        field = descriptor.fields_by_camelcase_name.get(key)
    return field


def _fill(message: Message, data: Any, path: str, depth: int) -> None:
    if not isinstance(data, dict):
        raise BadRequest(f"{path}: expected a JSON object, got {type(data).__name__}")
    if depth > MAX_DEPTH:
        raise BadRequest(f"{path}: messages nested more than {MAX_DEPTH} deep")
    descriptor: Descriptor = message.DESCRIPTOR  # type: ignore[assignment]
    for key, value in data.items():
        field = _field_by_json_key(descriptor, key)
        if field is None or value is None:
            continue
        where = f"{path}.{key}"
        if _is_map(field):
            if not isinstance(value, dict):
                raise BadRequest(f"{where}: expected a JSON object (map)")
            container = getattr(message, field.name)
            value_field = _message_type(field).fields_by_name["value"]
            for map_key, map_value in value.items():
                # Lone surrogates survive json.loads but not UTF-8: keep them out of messages.
                key_path = f"{where}.{map_key.encode('utf-8', 'backslashreplace').decode()}"
                try:
                    if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                        entry = container[map_key]
                    else:
                        container[map_key] = _scalar_in(value_field, map_value, key_path)
                        continue
                except (ValueError, TypeError) as exc:
                    raise BadRequest(f"{key_path}: invalid map key: {exc}") from exc
                _fill(entry, map_value, key_path, depth + 1)
        elif field.is_repeated:
            items = value if isinstance(value, list) else [value]
            container = getattr(message, field.name)
            for index, item in enumerate(items):
                item_path = f"{where}[{index}]"
                if field.type == FieldDescriptor.TYPE_MESSAGE:
                    _fill(container.add(), item, item_path, depth + 1)
                else:
                    _append(container, _scalar_in(field, item, item_path), item_path)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            sub = getattr(message, field.name)
            sub.SetInParent()
            _fill(sub, value, where, depth + 1)
        else:
            converted = _scalar_in(field, value, where)
            try:
                setattr(message, field.name, converted)
            except (ValueError, TypeError) as exc:
                raise BadRequest(f"{where}: invalid value {value!r}: {exc}") from exc


def _append(container: Any, value: Any, path: str) -> None:
    try:
        container.append(value)
    except (ValueError, TypeError) as exc:
        raise BadRequest(f"{path}: invalid value {value!r}: {exc}") from exc


def _scalar_in(field: FieldDescriptor, value: Any, path: str) -> Any:
    kind = field.type
    if kind == FieldDescriptor.TYPE_ENUM:
        if isinstance(value, str):
            enum_value = _enum(field).values_by_name.get(value)
            if enum_value is None:
                raise BadRequest(f"{path}: unknown {_enum(field).name} value {value!r}")
            return enum_value.number
        if isinstance(value, int) and not isinstance(value, bool):
            if value not in _enum(field).values_by_number:
                raise BadRequest(f"{path}: unknown {_enum(field).name} value {value}")
            return value
        raise BadRequest(f"{path}: expected an enum name, got {value!r}")
    if kind in _INT_TYPES:
        if isinstance(value, bool):
            raise BadRequest(f"{path}: expected an integer, got {value!r}")
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise BadRequest(f"{path}: expected an integer, got {value!r}")
    if kind in _FLOAT_TYPES:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise BadRequest(f"{path}: expected a number, got {value!r}")
        try:
            number = float(value)
        except ValueError as exc:
            raise BadRequest(f"{path}: expected a number, got {value!r}") from exc
        if math.isnan(number) or math.isinf(number):
            raise BadRequest(f"{path}: NaN and Infinity are not allowed")
        return number
    if kind == FieldDescriptor.TYPE_BOOL:
        if not isinstance(value, bool):
            raise BadRequest(f"{path}: expected true or false, got {value!r}")
        return value
    if kind == FieldDescriptor.TYPE_STRING:
        if not isinstance(value, str):
            raise BadRequest(f"{path}: expected a string, got {value!r}")
        return value
    if kind == FieldDescriptor.TYPE_BYTES:
        if not isinstance(value, str):
            raise BadRequest(f"{path}: expected base64 text, got {value!r}")
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadRequest(f"{path}: invalid base64: {exc}") from exc
    raise BadRequest(f"{path}: unsupported field type")
