"""Command-line flags as Mesos takes them.

Each daemon describes its flags as a frozen dataclass whose fields carry a ``help`` text in their
metadata. :func:`load` fills one from ``--name=value`` arguments (``--name value``, ``--flag`` and
``--no-flag`` for booleans) and from ``MESOS_<NAME>`` environment variables, the command line
winning, exactly as Mesos's ``flags.load("MESOS_", ...)`` does. Durations are written as Mesos
writes them (``15secs``, ``500ms``, ``2weeks``) and become seconds as floats; byte sizes as it
writes them (``512MB``, ``4GB``) become :class:`Bytes`.
"""

import dataclasses
import json
import os
import re
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from agent_runtime.errors import FlagError

T = TypeVar("T")

_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "ms": 1e-3,
    "secs": 1.0,
    "mins": 60.0,
    "hrs": 3600.0,
    "days": 86400.0,
    "weeks": 604800.0,
}
_UNIT_NANOS = [(unit, round(seconds * 1e9)) for unit, seconds in _DURATION_UNITS.items()]
_DURATION_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([a-z]*)\s*$")


class Duration(float):
    """Seconds, parsed from Mesos duration text (``10secs``); a bare number means seconds."""

    @classmethod
    def parse(cls, text: str) -> "Duration":
        match = _DURATION_RE.match(text)
        if not match:
            raise FlagError(f"invalid duration {text!r} (expected e.g. '5secs', '500ms')")
        number, unit = match.groups()
        if unit and unit not in _DURATION_UNITS:
            raise FlagError(f"invalid duration unit {unit!r} in {text!r}")
        return cls(float(number) * _DURATION_UNITS.get(unit, 1.0))

    def mesos(self) -> str:
        """Render as Mesos does in ``/flags`` (``5secs``, ``500ms``, ``10mins``).

        As stout's ``operator<<``: take the largest unit not above the value; if the value is
        not a whole number of it but is one of the next smaller unit, use that one instead.
        """
        nanos = round(float(self) * 1e9)
        sign, nanos = ("-", -nanos) if nanos < 0 else ("", nanos)
        index = max((i for i, (_, size) in enumerate(_UNIT_NANOS) if nanos >= size), default=0)
        if index and nanos % _UNIT_NANOS[index][1] and not nanos % _UNIT_NANOS[index - 1][1]:
            index -= 1
        unit, size = _UNIT_NANOS[index]
        return f"{sign}{nanos / size:.15g}{unit}"


_BYTE_UNITS = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}
_BYTES_RE = re.compile(r"^\s*([0-9]+)\s*([A-Za-z]*)\s*$")


class Bytes(int):
    """A byte count, parsed from Mesos's byte text (``512MB``, ``4GB``: units of 1024, as
    stout's ``Bytes``); a bare number means bytes."""

    @classmethod
    def parse(cls, text: str) -> "Bytes":
        match = _BYTES_RE.match(text)
        if not match:
            raise FlagError(f"invalid byte size {text!r} (expected e.g. '512MB', '4GB')")
        number, unit = match.groups()
        factor = _BYTE_UNITS.get(unit.upper() or "B")
        if factor is None:
            raise FlagError(f"invalid byte unit {unit!r} in {text!r} (known: "
                            f"{', '.join(_BYTE_UNITS)})")
        return cls(int(number) * factor)

    def mesos(self) -> str:
        """The largest unit that divides it, as stout prints ``Bytes`` (``4GB``, ``1536MB``)."""
        unit, size = next(((unit, size) for unit, size in reversed(_BYTE_UNITS.items())
                           if int(self) % size == 0 and self), ("B", 1))
        return f"{int(self) // size}{unit}"


def flag(default: Any, help: str, *, secret: bool = False) -> Any:
    """A dataclass field that is a flag. A ``secret`` one (credentials given inline) is never
    shown by ``/flags``: only a path to it is."""
    metadata = {"help": help, "secret": secret}
    if isinstance(default, list | dict):
        factory = type(default)
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _convert(name: str, hint: Any, raw: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if raw == "" and len(args) < len(typing.get_args(hint)):
            return None
        hint = args[0]
    try:
        if hint is bool:
            lowered = raw.lower()
            if lowered in ("true", "1", "yes", ""):
                return True
            if lowered in ("false", "0", "no"):
                return False
            raise FlagError(f"flag --{name}: expected true or false, got {raw!r}")
        if hint is Duration:
            return Duration.parse(raw)
        if hint is Bytes:
            try:
                return Bytes.parse(raw)
            except FlagError as exc:
                raise FlagError(f"flag --{name}: {exc}") from exc
        if hint is int:
            return int(raw)
        if hint is float:
            value = float(raw)
            if value != value or value in (float("inf"), float("-inf")):
                raise FlagError(f"flag --{name}: {raw!r} is not a finite number")
            return value
        return raw
    except ValueError as exc:
        raise FlagError(f"flag --{name}: invalid value {raw!r}") from exc


def load(
    cls: type[T],
    argv: Sequence[str],
    environ: Mapping[str, str],
    prefix: str = "MESOS_",
) -> T:
    """Build ``cls`` from ``argv`` (without the program name) and ``environ``."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    # Converted only where the command line does not override them, as in Mesos.
    from_env = {
        name: environ[prefix + name.upper()] for name in fields if prefix + name.upper() in environ
    }
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg in ("-h", "--help"):
            print(usage(cls))
            raise SystemExit(0)
        if not arg.startswith("--"):
            raise FlagError(f"unexpected argument {arg!r} (flags look like --name=value)")
        key, eq, raw = arg[2:].partition("=")
        name = key.replace("-", "_") if key.replace("-", "_") in fields else key
        if name not in fields and key[:3] in ("no_", "no-"):
            positive = key[3:].replace("-", "_")
            if positive in fields and hints[positive] is bool and not eq:
                values[positive] = False
                from_env.pop(positive, None)
                continue
        if name not in fields:
            raise FlagError(f"unknown flag --{key}")
        hint = hints[name]
        from_env.pop(name, None)
        if not eq:
            if hint is bool:
                values[name] = True
                continue
            if not args:
                raise FlagError(f"flag --{key} needs a value")
            raw = args.pop(0)
        values[name] = _convert(name, hint, raw)
    for name, raw in from_env.items():
        try:
            values[name] = _convert(name, hints[name], raw)
        except FlagError as exc:
            raise FlagError(f"{exc} (from {prefix}{name.upper()})") from exc
    return cls(**values)


def usage(cls: type[Any]) -> str:
    lines = ["Flags:"]
    for field in dataclasses.fields(cls):
        default = field.default if field.default is not dataclasses.MISSING else ""
        lines.append(f"  --{field.name}={default!s:<12} {field.metadata.get('help', '')}")
    return "\n".join(lines)


def as_strings(config: Any) -> dict[str, str]:
    """The flags as ``/flags`` shows them: every value a string, as Mesos renders them."""
    out: dict[str, str] = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if value is None:
            continue
        if field.metadata.get("secret") and not str(value).startswith(("/", "file://")):
            out[field.name] = "<redacted>"
        elif isinstance(value, bool):
            out[field.name] = "true" if value else "false"
        elif isinstance(value, Duration | Bytes):
            out[field.name] = value.mesos()
        else:
            out[field.name] = str(value)
    return out


def run_cli(main: typing.Callable[[], int]) -> typing.NoReturn:
    """Run ``main`` turning a :class:`FlagError` into one line on stderr and exit code 1."""
    try:
        code = main()
    except FlagError as exc:
        print(f"Failed to load flags: {exc}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 130
    raise SystemExit(code)


def json_object_flag(name: str, value: str) -> dict[str, Any]:
    """A flag whose value is a JSON object given inline or as the path of a file holding it
    (``file://`` stripped, ``~`` expanded): anything not starting with ``{`` is a path.
    FlagError names the flag and what is wrong."""
    text = value
    if not value.lstrip().startswith("{"):
        path = os.path.expanduser(value.strip().removeprefix("file://"))
        try:
            with open(path) as handle:
                text = handle.read()
        except OSError as exc:
            raise FlagError(f"--{name}: cannot read {path}: {exc.strerror or exc}") from exc
    try:
        loaded = json.loads(text)
    except ValueError as exc:
        raise FlagError(f"--{name} is not JSON: {exc}") from exc
    if not isinstance(loaded, dict):
        raise FlagError(f"--{name} must be a JSON object")
    return loaded
