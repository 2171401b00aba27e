"""IDs chosen by frameworks (framework, task, executor) or by daemons (agent, container), checked
as Mesos's ``validateID`` checks them. Each becomes a path component of a sandbox or a checkpoint
(see ``agent/paths.py``), so the rule is the one thing that keeps a hostile ID from naming a
directory outside ``--work_dir``; the master checks it on input, the agent again before any path.

The rule:

- not empty, and not ``.`` or ``..``;
- no ``/`` or ``\\`` (path separators, as in Mesos);
- printable only (``str.isprintable``): no NUL or other control character, no format characters
  such as bidi overrides that make an ID read differently in a log, no separator but the plain
  space; Mesos refuses only ASCII controls, so an ID it takes may be refused here;
- at most :data:`NAME_MAX` bytes in UTF-8: that is the limit a filesystem puts on one path
  component, and Mesos counts bytes too, so 200 emoji (800 bytes) are refused by name instead of
  failing later with ENAMETOOLONG.
"""

from __future__ import annotations

from agent_runtime.errors import BadRequest

NAME_MAX = 255
# How much of a refused ID an error message repeats: enough to recognise it.
_SHOWN = 64


def _shown(value: str) -> str:
    # repr escapes what the rule refuses (NUL, newlines, bidi overrides), so the message is safe
    # to log and to put in a status update.
    text = repr(value[:_SHOWN])
    return text if len(value) <= _SHOWN else text + "..."


def id_error(value: str) -> str | None:
    """Why ``value`` is not a valid ID, or None when it is."""
    if not value:
        return "ID must not be empty"
    if value in (".", ".."):
        return f"'{value}' is disallowed"
    if "/" in value or "\\" in value or not value.isprintable():
        return f"{_shown(value)} contains invalid characters"
    # Printable strings hold no lone surrogates, so they always encode.
    size = len(value.encode("utf-8"))
    if size > NAME_MAX:
        return f"ID must not be longer than {NAME_MAX} bytes in UTF-8 (it is {size})"
    return None


class InvalidId(BadRequest):
    """An ID that must not name a file or directory (HTTP 400)."""


def check_id(value: str, what: str) -> str:
    """``value`` when it is a valid ID; otherwise :class:`InvalidId` saying which ID and why."""
    problem = id_error(value)
    if problem is not None:
        raise InvalidId(f"{what} is invalid: {problem}")
    return value
