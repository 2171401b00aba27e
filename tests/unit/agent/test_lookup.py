"""``/files`` lookups on a real tree: links that stay in their sandbox are followed, links that
leave it (relative, absolute, through ``..``, into a sibling sandbox) are refused with a 403,
loops with a 400, and what is not a regular file is never read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent_runtime.agent import files, paths
from agent_runtime.errors import BadRequest, Forbidden, NotFound

AGENT, FRAMEWORK, EXECUTOR, RUN, OTHER_RUN = "A-S0", "A-0000", "e1", "c1", "c2"


@pytest.fixture
def work_dir(tmp_path: Path) -> str:
    work = str(tmp_path / "work")
    sandbox = paths.sandbox(work, AGENT, FRAMEWORK, EXECUTOR, RUN)
    other = paths.sandbox(work, AGENT, FRAMEWORK, EXECUTOR, OTHER_RUN)
    for directory in (os.path.join(sandbox, "sub", "deeper"), other):
        os.makedirs(directory)
    Path(sandbox, "stdout").write_text("out\n")
    Path(sandbox, "sub", "inner").write_text("inner\n")
    Path(other, "stdout").write_text("someone else's\n")
    (tmp_path / "secret").write_text("host secret\n")
    os.symlink(RUN, os.path.join(os.path.dirname(sandbox), "latest"))
    links = {
        "to_sub": "sub",
        "to_sub_absolute": os.path.join(sandbox, "sub"),
        "to_self": ".",
        "sub/deeper/back_to_stdout": "../../stdout",
        "out_of_sandbox": "..",
        "far_out": "../" * 9 + "secret",
        "to_sibling": f"../{OTHER_RUN}",
        "to_host": str(tmp_path),
        "to_root": "/",
        "loop": "loop",
        "dangling": "nowhere",
    }
    for name, target in links.items():
        os.symlink(target, os.path.join(sandbox, name))
    os.mkfifo(os.path.join(sandbox, "fifo"))
    return work


def _virtual(rest: str) -> str:
    return f"/frameworks/{FRAMEWORK}/executors/{EXECUTOR}/runs/latest/{rest}"


def _read(work_dir: str, rest: str) -> str:
    return str(files.read(work_dir, AGENT, _virtual(rest), None, None)["data"])


@pytest.mark.parametrize(("rest", "data"), [
    ("stdout", "out\n"),
    ("to_sub/inner", "inner\n"),
    ("to_sub_absolute/inner", "inner\n"),
    ("to_self/to_self/stdout", "out\n"),
    ("sub/deeper/back_to_stdout", "out\n"),
    ("to_sub/deeper/back_to_stdout", "out\n"),
])
def test_links_inside_the_sandbox_are_followed(work_dir: str, rest: str, data: str) -> None:
    assert _read(work_dir, rest) == data


@pytest.mark.parametrize("rest", [
    "out_of_sandbox/latest/stdout", "far_out", "to_sibling/stdout", "to_host/secret",
    "to_root/etc/hostname",
])
def test_links_out_of_the_sandbox_are_refused(work_dir: str, rest: str) -> None:
    with pytest.raises(Forbidden, match="outside its sandbox"):
        _read(work_dir, rest)
    with pytest.raises(Forbidden):
        files.browse(work_dir, AGENT, _virtual(rest))


def test_the_real_path_and_the_virtual_one_agree(work_dir: str) -> None:
    real = paths.sandbox(work_dir, AGENT, FRAMEWORK, EXECUTOR, RUN)
    assert files.read(work_dir, AGENT, real + "/to_sub/inner", None, None)["data"] == "inner\n"
    names = {os.path.basename(e["path"]) for e in files.browse(work_dir, AGENT, real)}
    assert {"stdout", "sub", "to_root", "fifo"} <= names
    with pytest.raises(Forbidden):
        files.read(work_dir, AGENT, real + "/to_root/etc/hostname", None, None)


def test_browse_shows_links_as_links_without_following(work_dir: str) -> None:
    entries = {os.path.basename(e["path"]): e for e in
               files.browse(work_dir, AGENT, _virtual(""))}
    assert entries["to_root"]["mode"].startswith("l")
    assert entries["sub"]["mode"].startswith("d")
    assert entries["fifo"]["mode"].startswith("p")


def test_loops_missing_files_and_odd_files(work_dir: str) -> None:
    with pytest.raises(BadRequest, match="too many levels"):
        _read(work_dir, "loop")
    with pytest.raises(NotFound):
        _read(work_dir, "dangling")
    with pytest.raises(NotFound):
        _read(work_dir, "stdout/below-a-file")
    with pytest.raises(BadRequest, match="not a regular file"):
        _read(work_dir, "fifo")  # and does not hang waiting for a writer
    with pytest.raises(BadRequest, match="is a directory"):
        _read(work_dir, "sub")


@pytest.mark.parametrize(("path", "error"), [
    ("", BadRequest), ("relative", BadRequest), ("/etc/passwd", Forbidden),
    ("/frameworks/../../etc", Forbidden), ("x\x00", BadRequest),
])
def test_bad_paths(work_dir: str, path: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        files.read(work_dir, AGENT, path, None, None)


def test_dot_dot_in_a_real_path_is_refused(work_dir: str) -> None:
    real = paths.sandbox(work_dir, AGENT, FRAMEWORK, EXECUTOR, RUN)
    with pytest.raises(Forbidden, match=r"'\.\.' is not allowed"):
        files.read(work_dir, AGENT, real + "/../" + OTHER_RUN + "/stdout", None, None)
