"""``linux/capabilities``: the capabilities a container's task holds and may ever hold.

Sets come from the task's ``LinuxInfo`` (``effective_capabilities``, ``bounding_capabilities``),
else the agent's ``--effective_capabilities`` / ``--bounding_capabilities``. As in Mesos, what a
framework asks for must lie inside the agent's bounding set, or the launch fails naming the
extra capabilities; the bounding set defaults to the effective one. A container with an image
and nothing asked gets Docker's default set (executors/security.py) even without this isolator.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent_runtime.containerizer import capabilities
from agent_runtime.containerizer.capabilities import describe
from agent_runtime.containerizer.containerizer import ContainerConfig
from agent_runtime.containerizer.isolator import Isolator, LaunchInfo
from agent_runtime.errors import LaunchError


class LinuxCapabilitiesIsolator(Isolator):
    def __init__(self, effective: frozenset[int] | None, bounding: frozenset[int] | None
                 ) -> None:
        self.effective = effective
        self.bounding = bounding

    async def prepare(self, container_id: str, config: ContainerConfig) -> LaunchInfo | None:
        linux = config.container_info.linux_info
        effective = capabilities.from_info(linux.effective_capabilities) \
            if linux.HasField("effective_capabilities") else None
        bounding = capabilities.from_info(linux.bounding_capabilities) \
            if linux.HasField("bounding_capabilities") else None
        if self.bounding is not None:
            for asked, what in ((effective, "effective"), (bounding, "bounding")):
                if asked is not None and not asked <= self.bounding:
                    raise LaunchError(
                        f"The {what} capabilities {describe(asked - self.bounding)} are not "
                        f"allowed by this agent's --bounding_capabilities")
        effective = self.effective if effective is None else effective
        bounding = bounding if bounding is not None else self.bounding
        if bounding is None:
            bounding = effective
        if effective is not None and bounding is not None and not effective <= bounding:
            raise LaunchError(f"The effective capabilities {describe(effective - bounding)} "
                              "are outside the bounding set")
        security: dict[str, list[int]] = {}
        if effective is not None:
            security["effective"] = sorted(effective)
        if bounding is not None:
            security["bounding"] = sorted(bounding)
        return LaunchInfo(security=security) if security else None


@dataclass(frozen=True)
class CapabilitiesConfig:
    effective: str | None = None  # --effective_capabilities (JSON), None: not set
    bounding: str | None = None  # --bounding_capabilities


def create(config: CapabilitiesConfig) -> LinuxCapabilitiesIsolator:
    return LinuxCapabilitiesIsolator(
        capabilities.parse_flag("effective_capabilities", config.effective),
        capabilities.parse_flag("bounding_capabilities", config.bounding))
