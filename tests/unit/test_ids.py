"""IDs as Mesos's validateID accepts them, counted in bytes, printable only; and the property
that matters: a valid ID is exactly one usable path component."""

from __future__ import annotations

import os
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_runtime.ids import NAME_MAX, InvalidId, check_id, id_error

EMOJI = "\N{GRINNING FACE}"  # four bytes in UTF-8


@pytest.mark.parametrize("value", ["task-1", "a b", "täsk", "x" * 255, "..a", "a.b",
                                   EMOJI * 63, "é" * 127])
def test_valid_ids(value: str) -> None:
    assert id_error(value) is None


@pytest.mark.parametrize(("value", "words"), [
    ("", "empty"), (".", "disallowed"), ("..", "disallowed"), ("a/b", "invalid characters"),
    ("/tmp/x", "invalid characters"), ("../../..", "invalid characters"),
    ("a\\b", "invalid characters"), ("tab\there", "invalid characters"),
    ("nul\x00", "invalid characters"), ("new\nline", "invalid characters"),
    ("del\x7f", "invalid characters"), ("c1\x85", "invalid characters"),
    ("bidi\u202etxt.exe", "invalid characters"), ("line\u2028sep", "invalid characters"),
    ("x" * 256, "longer than 255 bytes"), (EMOJI * 200, "(it is 800)"),
    ("é" * 128, "longer than 255 bytes"), ("\ud800", "invalid characters"),
])
def test_invalid_ids_say_why(value: str, words: str) -> None:
    problem = id_error(value)
    assert problem is not None and words in problem


def test_the_message_shows_refused_characters_escaped_and_long_ids_cut() -> None:
    problem = id_error("a\x00b")
    assert problem is not None and "\x00" not in problem and "\\x00" in problem
    problem = id_error("/" * 10_000)
    assert problem is not None and len(problem) < 200


def test_check_id_names_the_id() -> None:
    assert check_id("ok", "Task ID") == "ok"
    with pytest.raises(InvalidId, match=r"Framework ID is invalid: '\.\.' is disallowed"):
        check_id("..", "Framework ID")
    assert InvalidId("x").status == 400


@given(st.text())
def test_the_rule_never_raises_and_states_its_parts(value: str) -> None:
    valid = id_error(value) is None
    assert valid == (
        value not in ("", ".", "..")
        and "/" not in value and "\\" not in value
        and value.isprintable()
        and len(value.encode("utf-8")) <= NAME_MAX
    )


# Text around NAME_MAX bytes of wide characters: where counting characters goes wrong.
WIDE = st.text(st.characters(min_codepoint=0x800), min_size=60, max_size=90)


@settings(max_examples=300)
@given(st.one_of(st.text(min_size=1, max_size=300), WIDE))
def test_a_valid_id_is_one_component_a_filesystem_takes(value: str) -> None:
    if id_error(value) is not None:
        with pytest.raises(InvalidId):
            check_id(value, "ID")
        return
    with tempfile.TemporaryDirectory() as base:
        path = os.path.join(base, value)
        assert os.path.dirname(path) == base
        assert os.path.normpath(path) == path
        os.mkdir(path)  # no ENAMETOOLONG, no embedded NUL, no escape
        assert os.listdir(base) == [value]
