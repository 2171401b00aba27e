"""IDs as Mesos's validateID accepts them."""

from __future__ import annotations

import pytest

from agent_runtime.ids import id_error


@pytest.mark.parametrize("value", ["task-1", "a b", "täsk", "x" * 255, "..a", "a.b"])
def test_valid_ids(value: str) -> None:
    assert id_error(value) is None


@pytest.mark.parametrize(("value", "words"), [
    ("", "empty"), (".", "disallowed"), ("..", "disallowed"), ("a/b", "invalid characters"),
    ("a\\b", "invalid characters"), ("tab\there", "invalid characters"),
    ("del\x7f", "invalid characters"), ("x" * 256, "longer than 255"),
])
def test_invalid_ids_say_why(value: str, words: str) -> None:
    problem = id_error(value)
    assert problem is not None and words in problem
