"""``--isolation``: names to isolators, resolved once at agent start.

Each isolator is declared once, in ``isolators/registry.py``, as an :class:`IsolatorSpec`: its
``--isolation`` name, its factory and what it needs (the cgroup backend, other isolators on,
other isolators named before it). This module reads those declarations; it knows no isolator by
name, except the ``posix`` names that need none and the combinations Mesos refuses at start-up.

The spec is generic in the configuration its factory reads (``C``): the registry defines that
bag of small per-isolator configs, the composition root (``agent/composition.py``) fills it from
the flags, and nothing here looks inside it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from agent_runtime.containerizer.cgroup_backend import select_backend
from agent_runtime.containerizer.cgroups import Cgroups
from agent_runtime.containerizer.isolator import Isolator
from agent_runtime.errors import FlagError

# Names that need no isolator: usage comes from the process tree (posix/cpu, posix/mem), and the
# host's filesystem is shared (filesystem/posix, the default).
POSIX = ("posix/cpu", "posix/mem", "filesystem/posix")
# Mesos's deprecated spellings.
ALIASES = {"process": ("posix/cpu", "posix/mem"), "cgroups": ("cgroups/cpu", "cgroups/mem")}

C = TypeVar("C")


@dataclass(frozen=True)
class Host:
    """What the isolators share, built once: the cgroup backend when one of them needs it."""

    cgroups: Cgroups | None
    cgroups_root: str
    # The cgroup controllers of the cgroups isolators that are on, in --isolation order: how
    # an isolator finds a container's processes without knowing which of them runs.
    controllers: tuple[str, ...] = ()

    def backend(self) -> Cgroups:
        assert self.cgroups is not None, "an isolator that needs cgroups declares cgroups=True"
        return self.cgroups


@dataclass(frozen=True)
class IsolatorSpec(Generic[C]):
    """One ``--isolation`` name: how its isolator is built and what it needs."""

    name: str
    create: Callable[[C, Host], Isolator]
    cgroups: bool = False  # needs the cgroup backend (chosen once, see ``select_backend``)
    controller: str | None = None  # the cgroup controller it puts containers in, if any
    requires: tuple[str, ...] = ()  # isolators that must be on too (Mesos refuses it alone)
    after: tuple[str, ...] = ()  # isolators that must be on and named before it


def parse(isolation: str, known: Sequence[str]) -> list[str]:
    """The names ``--isolation`` gives, aliases expanded, duplicates dropped, order kept."""
    given = (name.strip() for name in isolation.split(",") if name.strip())
    names = list(dict.fromkeys(expanded for name in given
                               for expanded in ALIASES.get(name, (name,))))
    unknown = [name for name in names if name not in known and name not in POSIX]
    if unknown:
        raise FlagError(f"--isolation: unknown or not yet supported {unknown}; "
                        f"supported: {', '.join((*POSIX, *known))}")
    return names


def check(specs: Sequence[IsolatorSpec[C]], names: Sequence[str],
          image_providers: Sequence[str]) -> None:
    """The combinations Mesos refuses at start-up, refused here too, with the flag named."""
    if "filesystem/linux" in names and "filesystem/posix" in names:
        raise FlagError("--isolation: only one filesystem isolator may be given, not both "
                        "filesystem/linux and filesystem/posix")
    for spec in specs:
        if spec.name not in names:
            continue
        position = names.index(spec.name)
        for needed in spec.requires:
            if needed not in names:
                raise FlagError(f"--isolation: {spec.name} needs {needed}")
        for needed in spec.after:
            if needed not in names[:position]:
                raise FlagError(f"--isolation: {spec.name} needs {needed}, named before it")
    if "docker" in image_providers:
        missing = [name for name in ("filesystem/linux", "docker/runtime") if name not in names]
        if missing:
            raise FlagError(f"--image_providers=docker needs --isolation to include "
                            f"{' and '.join(missing)}")


def create_isolators(specs: Sequence[IsolatorSpec[C]], configs: C, isolation: str,
                     image_providers: Sequence[str] = (), cgroups_hierarchy: str = "",
                     cgroups_root: str = "") -> list[Isolator]:
    """The isolators ``--isolation`` names, in its order; cgroups are checked here, once."""
    by_name = {spec.name: spec for spec in specs}
    names = parse(isolation, list(by_name))
    check(specs, names, image_providers)
    chosen = [by_name[name] for name in names if name in by_name]
    if not chosen:
        return []
    cgroups = select_backend(cgroups_hierarchy) if any(s.cgroups for s in chosen) else None
    host = Host(cgroups, cgroups_root,
                tuple(spec.controller for spec in chosen if spec.controller is not None))
    return [spec.create(configs, host) for spec in chosen]
