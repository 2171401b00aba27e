"""``linux/seccomp``: a system-call filter for every container's task.

The profile is ``LinuxInfo.seccomp.profile_name`` (a file in ``--seccomp_config_dir``), else
``--seccomp_profile_name``, else our bundled ``default.json`` (modelled on Docker's default
profile: Mesos applies none without ``--seccomp_profile_name``; we apply one, as Docker does).
``LinuxInfo.seccomp.unconfined`` runs the task without a filter. A profile that cannot be read
stops the agent at start-up with the flag named; one named by a task fails that launch.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

from agent_runtime.containerizer import capabilities
from agent_runtime.containerizer.capabilities import DOCKER_DEFAULT
from agent_runtime.containerizer.containerizer import ContainerConfig
from agent_runtime.containerizer.isolator import Isolator, LaunchInfo
from agent_runtime.errors import FlagError, LaunchError

from .seccomp_profile import ALL_CAPABILITIES, ProfileBook, ProfileError

BUNDLED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seccomp")
DEFAULT_PROFILE = "default.json"


class SeccompIsolator(Isolator):
    def __init__(self, book: ProfileBook, default: str | None,
                 effective: frozenset[int] | None = None) -> None:
        self.book = book
        self.default = default
        self.effective = effective  # --effective_capabilities

    async def prepare(self, container_id: str, config: ContainerConfig) -> LaunchInfo | None:
        linux = config.container_info.linux_info
        seccomp = linux.seccomp
        if linux.HasField("seccomp") and seccomp.unconfined:
            return None
        name = seccomp.profile_name if linux.HasField("seccomp") and seccomp.profile_name \
            else self.default
        if name is None:
            return None
        held = self._held(config)
        program = self.book.cached(name, held)
        try:
            if program is None:  # compiled once per profile and capability set, off the loop
                program = await asyncio.to_thread(self.book.program, name, held)
        except ProfileError as exc:
            raise LaunchError(str(exc)) from None
        return LaunchInfo(security={"seccomp": program})

    def _held(self, config: ContainerConfig) -> frozenset[int]:
        """What the task will hold, for the profile's capability conditions: what
        linux/capabilities or the image default gives it, else everything (root's lot)."""
        linux = config.container_info.linux_info
        if linux.HasField("effective_capabilities"):
            return capabilities.from_info(linux.effective_capabilities)
        if self.effective is not None:
            return self.effective
        if config.rootfs is not None:
            return DOCKER_DEFAULT
        return ALL_CAPABILITIES


@dataclass(frozen=True)
class SeccompConfig:
    config_dir: str | None = None  # --seccomp_config_dir; None: the bundled profiles
    profile_name: str | None = None  # --seccomp_profile_name
    effective_capabilities: str | None = None  # --effective_capabilities (JSON)


def create(config: SeccompConfig) -> SeccompIsolator:
    directory = config.config_dir or BUNDLED
    if not os.path.isdir(directory):
        raise FlagError(f"--seccomp_config_dir: {directory} is not a directory")
    book = ProfileBook(directory)
    if config.profile_name is not None:
        default: str | None = config.profile_name
    elif config.config_dir is None:
        default = DEFAULT_PROFILE
    else:
        default = None
    if default is not None:
        try:  # read and compiled now: a broken profile stops the agent, not a task
            for held in (DOCKER_DEFAULT, ALL_CAPABILITIES):  # image tasks', host tasks'
                book.program(default, held)
        except ProfileError as exc:
            raise FlagError(f"--seccomp_profile_name: {exc}") from None
    return SeccompIsolator(book, default, capabilities.parse_flag(
        "effective_capabilities", config.effective_capabilities))
