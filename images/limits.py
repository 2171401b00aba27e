"""Caps on how much an image may unpack to (``--image_max_layer_size``, ``--image_max_size``).

A layer's compressed size says nothing about what it unpacks to: a 3.4 MB gzip layer of zeros
became 1 GiB. So bytes are counted as they are written (:func:`~.extract.extract_layer` calls
:meth:`SizeBudget.charge` before each write, and once per entry for its tar header), and the
extraction stops at the first byte over the cap; the store then removes the partial layer.

An image's layers unpack in parallel threads, each against its own budget whose parent is the
image's, so both caps hold while they run. Thread-safe for that reason.
"""

from __future__ import annotations

import dataclasses
import threading

from agent_runtime.flags import Bytes

from .errors import ImageTooLarge

LAYER_FLAG = "--image_max_layer_size"
IMAGE_FLAG = "--image_max_size"


@dataclasses.dataclass(frozen=True)
class SizeLimits:
    """The caps, from the agent's flags (``provisioning.py`` passes them in)."""

    max_layer: int  # bytes one layer may unpack to
    max_image: int  # bytes all layers of one image may unpack to


class SizeBudget:
    """Bytes ``what`` may still unpack to; :meth:`charge` raises :class:`ImageTooLarge` naming
    ``what`` and the flag that set ``limit`` once they are spent (the parent's too)."""

    def __init__(self, limit: int, what: str, flag: str, used: int = 0,
                 parent: SizeBudget | None = None) -> None:
        self.limit = limit
        self.what = what
        self.flag = flag
        self.used = used
        self.parent = parent
        self._lock = threading.Lock()

    def child(self, limit: int, what: str, flag: str) -> SizeBudget:
        return SizeBudget(limit, what, flag, parent=self)

    def charge(self, count: int) -> None:
        budget: SizeBudget | None = self
        while budget is not None:
            with budget._lock:
                budget.used += count
                over = budget.used > budget.limit
            if over:
                where = "" if budget is self else f" (stopped in {self.what})"
                raise ImageTooLarge(f"{budget.what} unpacks to more than "
                                    f"{Bytes(budget.limit).mesos()} ({budget.flag}){where}")
            budget = budget.parent


NO_LIMITS = SizeLimits(max_layer=1 << 62, max_image=1 << 62)
"""For stores made without caps (tools, tests): more than any disk holds."""
