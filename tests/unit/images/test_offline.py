"""The mesos-images command line: arguments, one-line errors, inspect."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from agent_runtime.images.offline import default_cache_dir, run, split_args

from .test_docker_save import write


def test_names_and_flags_split_with_or_without_equals() -> None:
    assert split_args(["--output", "/o", "redis", "--rebuild", "busybox", "--cache_dir=/c"]) == \
        (["redis", "busybox"], ["--output", "/o", "--rebuild", "--cache_dir=/c"])


def test_cache_dir_follows_xdg() -> None:
    assert default_cache_dir({"XDG_CACHE_HOME": "/x"}) == "/x/agent-runtime/images"


@pytest.mark.parametrize(("argv", "message"), [
    (["build", "postgres"], "no recipe for image 'postgres' (known: busybox, redis)"),
    (["build", "--apt_update=sometimes"], "--apt_update must be auto, always or never"),
    (["build", "--colour=red"], "unknown flag --colour"),
    (["frobnicate"], "unknown command 'frobnicate'"),
    (["inspect"], "inspect takes an archive"),
    (["inspect", "/nonexistent.tar"], "cannot open image archive /nonexistent.tar"),
])
def test_errors_are_one_line_and_exit_1(capsys: pytest.CaptureFixture[str], argv: list[str],
                                        message: str) -> None:
    assert run(argv, {}) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("mesos-images: ")


def test_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--help"], {}) == 0
    assert run([], {}) == 1
    assert "mesos-images build" in capsys.readouterr().out


def test_inspect_prints_the_image(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    path = os.path.join(tmp_path, "redis.tar")
    saved = write(path)
    assert run(["inspect", path, "library/redis"], {}) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["image_id"] == saved.image_id and shown["repo_tags"] == ["redis:latest"]
    assert [layer["diff_id"] for layer in shown["layers"]] == list(saved.diff_ids)
