"""Parsing apt's output and choosing packages: no apt run here (the integration test runs it)."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest

from agent_runtime.images.apt import (
    Apt,
    Package,
    is_library_package,
    library_closure,
    parse_depends,
    parse_print_uris,
)
from agent_runtime.images.errors import AptError

DEPENDS = """\
redis-tools
  Depends: adduser
  Depends: libc6
  Depends: libssl3
  Depends: libsystemd0
    libelogind0
libpam-runtime
 |Depends: debconf
  Depends: <debconf-2.0>
    cdebconf
    debconf
  PreDepends: libpam-modules
  Conflicts: <libpam0g-util>
libssl3
  Depends: libc6:amd64
<debconf-2.0>
"""

URIS = (
    "'http://deb.debian.org/debian/pool/main/g/glibc/libc6_2.36-9%2bdeb12u14_amd64.deb' "
    "libc6_2.36-9+deb12u14_amd64.deb 2759320 "
    "SHA256:ba4f88f73dbc3ae9055f3c20f4523bfdbaf1ad13ff95e258924f77d20b4fbedf\n"
    "'http://deb.debian.org/debian-security/pool/updates/main/r/redis/"
    "redis-tools_7.0.15-1%7edeb12u10_amd64.deb' "
    "redis-tools_5%3a7.0.15-1~deb12u10_amd64.deb 991988 SHA512:ABCDEF\n"
)


def test_parse_depends_keeps_first_alternatives_and_drops_virtuals() -> None:
    graph = parse_depends(DEPENDS)
    assert graph["redis-tools"] == ["adduser", "libc6", "libssl3", "libsystemd0"]
    assert graph["libpam-runtime"] == ["debconf", "libpam-modules"]
    assert graph["libssl3"] == ["libc6"]


def test_library_closure_follows_library_packages_only() -> None:
    graph = {"redis-tools": ["adduser", "libssl3"], "adduser": ["libperl"],
             "libssl3": ["libc6", "debconf"], "libc6": ["libgcc-s1"], "libgcc-s1": []}
    assert library_closure(graph, ["redis-tools"]) == \
        ["libc6", "libgcc-s1", "libssl3", "redis-tools"]


@pytest.mark.parametrize(("name", "library"), [
    ("libssl3", True), ("libc6", True), ("libssl-dev", False), ("adduser", False),
    ("libc-bin", False), ("libpam-doc", False),
])
def test_is_library_package(name: str, library: bool) -> None:
    assert is_library_package(name) is library


def test_parse_print_uris_decodes_the_epoch() -> None:
    libc, redis = parse_print_uris(URIS)
    assert (libc.name, libc.version, libc.architecture, libc.size) == \
        ("libc6", "2.36-9+deb12u14", "amd64", 2759320)
    assert (libc.hash_name, libc.hash_value[:8]) == ("sha256", "ba4f88f7")
    assert (redis.name, redis.version, redis.hash_name) == \
        ("redis-tools", "5:7.0.15-1~deb12u10", "sha512")
    assert str(redis) == "redis-tools=5:7.0.15-1~deb12u10"


def test_cached_debs_are_used_only_when_their_hash_matches(tmp_path: Any) -> None:
    debs, archives = os.path.join(tmp_path, "debs"), os.path.join(tmp_path, "archives")
    os.makedirs(debs)
    os.makedirs(archives)
    content = b"!<arch>\n..."
    package = Package("x", "1", "amd64", "x_1_amd64.deb", len(content), "sha256",
                      hashlib.sha256(content).hexdigest())
    apt = Apt(debs, update="never", archives=[archives])
    assert apt.cached(package) is None
    with open(os.path.join(debs, package.filename), "wb") as corrupt:
        corrupt.write(b"truncated")
    with open(os.path.join(archives, package.filename), "wb") as good:
        good.write(content)
    assert apt.cached(package) == os.path.join(archives, package.filename)
    assert apt.fetch([package]) == {"x": os.path.join(archives, package.filename)}


def test_tool_failures_become_apt_errors() -> None:
    apt = Apt("/nonexistent", update="never")
    with pytest.raises(AptError, match="is not installed"):
        apt._run(["no-such-apt-tool-here"])
    with pytest.raises(AptError, match="sh -c failed: E: boom"):
        apt._run(["sh", "-c", "echo 'E: boom' >&2; exit 100"])


def test_update_policy_never_does_not_retry() -> None:
    apt = Apt("/nonexistent", update="never")
    calls: list[int] = []

    def fails() -> None:
        calls.append(1)
        raise AptError("E: Unable to locate package x")

    with pytest.raises(AptError, match="Unable to locate"):
        apt.with_update(fails)
    assert calls == [1] and not apt.may_update()
    assert Apt("/nonexistent").may_update()
