"""``FrameworkInfo.offer_filters``: the least an offer must hold for one framework, per role.

Mesos lets a framework say, per role, which minimum quantities make an offer worth sending
(``OfferFilters.min_allocatable_resources``: alternatives, any one held in full suffices), on top
of the master's ``--min_allocatable_resources``. The scheduler writes these, so every number is
checked here before the allocator sees it: a negative, infinite or NaN quantity, a role the
framework is not subscribed to, or an absurd number of alternatives is a 400 naming it.
"""

from __future__ import annotations

import math

from agent_runtime.errors import BadRequest
from agent_runtime.proto import mesos_pb2
from agent_runtime.resource_values import to_millis

# Enough for any real use; bounds the work one SUBSCRIBE can make every allocation cycle do.
MAX_ALTERNATIVES = 64
MAX_QUANTITIES = 64


def offer_minimums(info: mesos_pb2.FrameworkInfo,
                   roles: list[str]) -> dict[str, list[dict[str, int]]]:
    """Per role, the alternatives of scalar amounts in the allocator's milli units."""
    out: dict[str, list[dict[str, int]]] = {}
    for role, filters in info.offer_filters.items():
        if role not in roles:
            raise BadRequest(f"'FrameworkInfo.offer_filters' names role '{role}' "
                             "the framework is not subscribed to")
        if not filters.HasField("min_allocatable_resources"):
            continue
        alternatives = filters.min_allocatable_resources.quantities
        if len(alternatives) > MAX_ALTERNATIVES:
            raise BadRequest(f"'FrameworkInfo.offer_filters' for role '{role}' has more than "
                             f"{MAX_ALTERNATIVES} alternatives")
        out[role] = [_alternative(role, a) for a in alternatives]
    return out


def _alternative(role: str,
                 quantities: mesos_pb2.OfferFilters.ResourceQuantities) -> dict[str, int]:
    if len(quantities.quantities) > MAX_QUANTITIES:
        raise BadRequest(f"'FrameworkInfo.offer_filters' for role '{role}' names more than "
                         f"{MAX_QUANTITIES} resources in one alternative")
    amounts: dict[str, int] = {}
    for name, scalar in quantities.quantities.items():
        if not name:
            raise BadRequest(f"'FrameworkInfo.offer_filters' for role '{role}' has an "
                             "empty resource name")
        if not math.isfinite(scalar.value) or scalar.value < 0:
            raise BadRequest(f"'FrameworkInfo.offer_filters' for role '{role}': {name} must "
                             f"be a finite, non-negative quantity, not {scalar.value}")
        amounts[name] = to_millis(scalar.value)
    return amounts


__all__ = ["offer_minimums"]
