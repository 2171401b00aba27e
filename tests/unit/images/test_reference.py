"""Image references, normalised as docker shows them."""

from __future__ import annotations

import pytest

from agent_runtime.errors import BadRequest
from agent_runtime.images.reference import Reference, parse_reference

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(("text", "expected"), [
    ("redis", Reference("", "redis", "latest")),
    ("library/redis:7.0", Reference("", "redis", "7.0")),
    ("docker.io/library/redis", Reference("", "redis", "latest")),
    ("mesosphere/inky", Reference("", "mesosphere/inky", "latest")),
    ("localhost:5000/busybox", Reference("localhost:5000", "busybox", "latest")),
    ("registry.example.com/a/b:1", Reference("registry.example.com", "a/b", "1")),
    (f"redis@{DIGEST}", Reference("", "redis", "latest", DIGEST)),
])
def test_parse(text: str, expected: Reference) -> None:
    assert parse_reference(text) == expected


def test_str_and_name() -> None:
    ref = parse_reference("localhost:5000/busybox:1")
    assert (str(ref), ref.name) == ("localhost:5000/busybox:1", "localhost:5000/busybox")
    assert str(parse_reference(f"redis@{DIGEST}")) == f"redis@{DIGEST}"


@pytest.mark.parametrize("text", ["", "Redis", "redis:", "redis:-x", "a//b", "redis@sha256:xyz"])
def test_bad_references_are_bad_requests(text: str) -> None:
    with pytest.raises(BadRequest):
        parse_reference(text)
