"""The one place that picks the provisioner's backend (STYLE rule 6): overlay or copy.

Apart from backend.py (the Protocol and the mount helpers both backends use) so that no backend
imports the module that chooses it.
"""

from __future__ import annotations

from .backend import BACKENDS, Backend, overlay_works
from .backend_copy import CopyBackend
from .backend_overlay import OverlayBackend
from .errors import ProvisionError


def choose_backend(name: str | None, upper_parent: str, lower_parent: str) -> Backend:
    """The backend named, or overlay when it works here, else copy. Called once."""
    if name is None:
        name = "overlay" if overlay_works(upper_parent, lower_parent) else "copy"
    if name == "overlay":
        return OverlayBackend()
    if name == "copy":
        return CopyBackend()
    raise ProvisionError(f"unknown provisioner backend {name!r} (known: {', '.join(BACKENDS)})")
