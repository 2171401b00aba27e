"""``cgroups/devices`` against this machine's real devices hierarchy: a process in the container
opens what the Mesos whitelist allows and gets EPERM for any other device."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_runtime.containerizer.cgroups import CgroupsV1
from agent_runtime.containerizer.isolation import Host
from agent_runtime.errors import FlagError
from agent_runtime.isolators.cgroups_devices import (
    DEFAULT_WHITELIST,
    DevicesConfig,
    DevicesIsolator,
    allowed_entries,
    create,
)
from agent_runtime.resources import Resources
from tests.unit.isolators.real_cgroups import (
    HIERARCHY,
    cgroup_root,
    container_config,
    launch_python,
    output,
)

# Opens each path given and prints "path errno-name" (or "path ok").
OPEN_EACH = """
import errno, os, sys
for path in sys.argv[1:]:
    try:
        os.close(os.open(path, os.O_RDONLY))
        print(path, "ok")
    except OSError as exc:
        print(path, errno.errorcode[exc.errno])
"""


@pytest.fixture
def root() -> Iterator[str]:
    yield from cgroup_root(["devices"])


def _outside_the_whitelist() -> str:
    """A device node this test may open (no cgroup in the way) that the whitelist leaves out."""
    for path in ("/dev/loop-control", "/dev/mem", "/dev/kmsg"):
        try:
            os.close(os.open(path, os.O_RDONLY))
            return path
        except OSError:
            continue
    pytest.skip("no openable device outside the whitelist on this machine")


def _whitelist(path: str, read: bool = True) -> str:
    return json.dumps({"allowed_devices": [{
        "device": {"path": path}, "access": {"read": read, "write": True, "mknod": False}}]})


async def _open_in_container(isolator: DevicesIsolator, container: str, tmp_path: Path,
                             paths: list[str]) -> dict[str, str]:
    info = await isolator.prepare(container, container_config(container, Resources(), tmp_path))
    assert info is not None
    code = f"import sys; sys.argv[1:] = {paths!r}\n{OPEN_EACH}"
    process = await launch_python(code, tmp_path / container, info.cgroup_procs)
    lines = (await output(process, tmp_path / container)).split("\n")
    return dict(line.split(" ", 1) for line in lines if line)


def test_allowed_devices_become_whitelist_lines() -> None:
    assert allowed_entries(None) == ()
    assert allowed_entries(_whitelist("/dev/null")) == ("c 1:3 rw",)
    assert allowed_entries(_whitelist("/dev/zero", read=False)) == ("c 1:5 w",)
    with pytest.raises(FlagError, match="not a DeviceWhitelist"):
        allowed_entries("{not json")
    with pytest.raises(FlagError, match="/etc/hostname is not a device"):
        allowed_entries(_whitelist("/etc/hostname"))
    with pytest.raises(FlagError, match="No such file"):
        allowed_entries(_whitelist("/dev/no-such-device"))
    with pytest.raises(FlagError, match="needs a 'path'"):
        allowed_entries('{"allowed_devices": [{"access": {"read": true}}]}')


@pytest.mark.cgroups
async def test_the_container_opens_only_whitelisted_devices(root: str, tmp_path: Path) -> None:
    denied = _outside_the_whitelist()
    isolator = create(DevicesConfig(), Host(CgroupsV1(HIERARCHY), root))
    listing = Path(HIERARCHY, "devices", root, "c1", "devices.list")
    result = await _open_in_container(isolator, "c1", tmp_path,
                                      ["/dev/null", "/dev/zero", "/dev/urandom", denied])
    assert listing.read_text().split("\n")[:-1] == list(DEFAULT_WHITELIST)
    assert result == {"/dev/null": "ok", "/dev/zero": "ok", "/dev/urandom": "ok",
                      denied: "EPERM"}
    await isolator.cleanup("c1")
    assert not listing.parent.exists()
    await isolator.cleanup("c1")  # idempotent


@pytest.mark.cgroups
async def test_allowed_devices_adds_to_the_whitelist(root: str, tmp_path: Path) -> None:
    extra = _outside_the_whitelist()
    config = DevicesConfig(allowed_devices=_whitelist(extra))
    isolator = create(config, Host(CgroupsV1(HIERARCHY), root))
    result = await _open_in_container(isolator, "c1", tmp_path, [extra, "/dev/null"])
    assert result == {extra: "ok", "/dev/null": "ok"}
    await isolator.cleanup("c1")


@pytest.mark.cgroups
async def test_recover_removes_cgroups_of_unknown_containers(root: str, tmp_path: Path) -> None:
    isolator = create(DevicesConfig(), Host(CgroupsV1(HIERARCHY), root))
    for name in ("known", "orphan"):
        await isolator.prepare(name, container_config(name, Resources(), tmp_path))
    await create(DevicesConfig(), Host(CgroupsV1(HIERARCHY), root)).recover(["known"])
    assert CgroupsV1(HIERARCHY).children("devices", root) == ["known"]
    await isolator.cleanup("known")
