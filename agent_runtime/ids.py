"""Framework-chosen IDs (task, executor), checked as Mesos's ``validateID`` checks them: they
become path components of sandboxes and checkpoints, so nothing that could leave a directory."""

from __future__ import annotations

NAME_MAX = 255


def id_error(value: str) -> str | None:
    """Why ``value`` is not a valid ID, or None when it is."""
    if not value:
        return "ID must not be empty"
    if len(value) > NAME_MAX:
        return f"ID must not be longer than {NAME_MAX} characters"
    if value in (".", ".."):
        return f"'{value}' is disallowed"
    if any(c in "/\\" or ord(c) < 32 or ord(c) == 127 for c in value):
        return f"'{value}' contains invalid characters"
    return None
