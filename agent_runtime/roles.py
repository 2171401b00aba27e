"""Role names: what Mesos accepts as a role (``src/common/roles.cpp``)."""

from __future__ import annotations

from agent_runtime.errors import BadRequest


def validate_role(role: str) -> None:
    """Role names as Mesos accepts them (``src/common/roles.cpp``)."""
    if role == "*":
        return
    if not role:
        raise BadRequest("role name must not be empty")
    if role.startswith("/") or role.endswith("/"):
        raise BadRequest(f"role {role!r} must not start or end with '/'")
    for part in role.split("/"):
        if part in ("", ".", ".."):
            raise BadRequest(f"role {role!r} has an invalid path component {part!r}")
        if part.startswith("-"):
            raise BadRequest(f"role {role!r}: a component must not start with '-'")
        if part == "*":
            raise BadRequest(f"role {role!r}: '*' is only valid on its own")
        if any(c.isspace() or ord(c) < 32 or c == "\x7f" for c in part):
            raise BadRequest(f"role {role!r} contains whitespace or control characters")
