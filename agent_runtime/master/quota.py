"""Quota and weights: validated, kept in the registry, handed to the allocator.

Quota follows Mesos 1.9+: per role, a ``guarantee`` (deprecated, still honoured) and a ``limit``
over scalar resources. The legacy ``/quota`` endpoint and SET_QUOTA set a guarantee that is also
the limit; UPDATE_QUOTA sets both, all or nothing. Consumption is what the allocator counts:
reservations of the role's subtree plus its unreserved allocation.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from agent_runtime.errors import BadRequest, Conflict
from agent_runtime.master.allocator import Allocator
from agent_runtime.master.book import MasterBook
from agent_runtime.master.effects import MasterEffects
from agent_runtime.master.registry import Quota
from agent_runtime.proto import mesos_pb2, quota_pb2
from agent_runtime.resources import Resources, to_millis, validate_role

log = logging.getLogger(__name__)


def _millis_text(quantities: dict[str, int]) -> str:
    return ";".join(f"{name}:{value / 1000:g}" for name, value in sorted(quantities.items()))


# Weights divide shares in DRF: bounded so that no share overflows or vanishes.
MIN_WEIGHT, MAX_WEIGHT = 1e-6, 1e6


def scalars_of(resources: Iterable[mesos_pb2.Resource], what: str) -> Resources:
    """Quota resources: unreserved scalars, each name once."""
    seen: set[str] = set()
    for res in resources:
        if res.type != mesos_pb2.Value.SCALAR:
            raise BadRequest(f"Invalid {what}: '{res.name}' is not a scalar resource")
        if res.reservations or (res.HasField("role") and res.role != "*"):
            raise BadRequest(f"Invalid {what}: '{res.name}' must not be reserved")
        if res.name in seen:
            raise BadRequest(f"Invalid {what}: '{res.name}' is given more than once")
        seen.add(res.name)
    return Resources.from_proto(resources)


def amounts_from_map(values: dict[str, mesos_pb2.Value.Scalar], what: str) -> dict[str, int]:
    """A QuotaConfig map in thousandths; zeros are kept (a limit of 0 forbids the resource)."""
    out: dict[str, int] = {}
    for name, scalar in values.items():
        if not name:
            raise BadRequest(f"Invalid {what}: a resource name is empty")
        if not 0 <= scalar.value < float("inf"):
            raise BadRequest(f"Invalid {what}: '{name}' must be a finite, non-negative number")
        out[name] = to_millis(scalar.value)
    return out


class QuotaBook:
    """Quota and weights of roles: checked here, kept in the book's registry state (written
    through the effects), applied to the allocator."""

    def __init__(self, book: MasterBook, effects: MasterEffects, allocator: Allocator, *,
                 flag_weights: Mapping[str, float] | None = None) -> None:
        self.book = book
        self.effects = effects
        self.allocator = allocator
        self.flag_weights = dict(flag_weights or {})  # --weights, below the registry's

    @property
    def _state(self) -> dict[str, Quota]:
        return self.book.registry.quota

    def recover(self) -> None:
        """Hand the registry's weights and quota to the allocator (master start-up)."""
        for role, weight in self.book.registry.weights.items():
            self.allocator.set_weight(role, weight)
        for role, quota in self._state.items():
            self.allocator.set_quota(role, quota.guarantee, quota.limit)

    def _check_role(self, role: str) -> None:
        validate_role(role)
        self.book.roles.check(role)

    # Quota ----------------------------------------------------------------------------------
    def set_legacy(self, request: quota_pb2.QuotaRequest, principal: str | None) -> None:
        """``POST /quota`` and SET_QUOTA: the guarantee is also the limit."""
        role = request.role
        if not role:
            raise BadRequest("Invalid quota request: 'role' is missing")
        self._check_role(role)
        if role in self._state:
            raise BadRequest(f"Quota cannot be set for role '{role}' which already has quota")
        guarantee = scalars_of(request.guarantee, "quota request").scalars()
        if not guarantee:
            raise BadRequest("Invalid quota request: 'guarantee' is empty")
        if not request.force:
            self._check_capacity({role: guarantee})
        self._apply({role: Quota(guarantee, dict(guarantee), principal or "")})

    def update(self, configs: Iterable[quota_pb2.QuotaConfig], force: bool,
               principal: str | None) -> None:
        """UPDATE_QUOTA: every config is checked before any is applied."""
        changes: dict[str, Quota] = {}
        for config in configs:
            role = config.role
            if not role:
                raise BadRequest("Invalid QuotaConfig: 'role' is missing")
            self._check_role(role)
            if role in changes:
                raise BadRequest(f"Invalid QuotaConfig: role '{role}' is given more than once")
            guarantee = amounts_from_map(dict(config.guarantees), f"guarantees of '{role}'")
            limit = amounts_from_map(dict(config.limits), f"limits of '{role}'")
            for name, value in guarantee.items():
                if name in limit and limit[name] < value:
                    raise BadRequest(f"Invalid QuotaConfig: role '{role}' has a guarantee of "
                                     f"{name} above its limit")
            if not force:
                consumed = self.allocator.quota_consumed(role)
                for name, value in limit.items():
                    if consumed.get(name, 0) > value:
                        raise BadRequest(
                            f"Invalid QuotaConfig: role '{role}' already consumes "
                            f"{_millis_text(consumed)}, above its new limit; use 'force' to "
                            "set it anyway"
                        )
            changes[role] = Quota(guarantee, limit, principal or "")
        if not force:
            self._check_capacity({r: q.guarantee for r, q in changes.items()})
        self._apply(changes)

    def remove(self, role: str) -> None:
        self._check_role(role)
        if role not in self._state:
            raise BadRequest(f"Cannot remove quota for role '{role}' which has no quota set")
        self._state.pop(role)
        self.allocator.remove_quota(role)
        self.effects.save_registry()
        self.effects.allocate_soon()

    def _check_capacity(self, changes: dict[str, dict[str, int]]) -> None:
        """Mesos's heuristic: all guarantees together must fit in the cluster."""
        wanted: dict[str, int] = {}
        for role, quota in self._state.items():
            if role not in changes:
                for name, value in quota.guarantee.items():
                    wanted[name] = wanted.get(name, 0) + value
        for guarantee in changes.values():
            for name, value in guarantee.items():
                wanted[name] = wanted.get(name, 0) + value
        total: dict[str, int] = {}
        for agent in self.book.agents.values():
            for name, value in agent.total.scalars().items():
                total[name] = total.get(name, 0) + value
        short = {n: v for n, v in wanted.items() if v > total.get(n, 0)}
        if short:
            raise Conflict(
                "Not enough available cluster capacity to reasonably satisfy quota request "
                f"(guarantees would need {_millis_text(short)}); the force flag can be used "
                "to override this check"
            )

    def _apply(self, changes: dict[str, Quota]) -> None:
        for role, quota in changes.items():
            if not quota.guarantee and not quota.limit:
                self._state.pop(role, None)
                self.allocator.remove_quota(role)
                continue
            self._state[role] = quota
            self.allocator.set_quota(role, quota.guarantee, quota.limit)
            log.info("quota of %s: guarantee %s, limit %s", role,
                     _millis_text(quota.guarantee), _millis_text(quota.limit) or "none")
        self.effects.save_registry()
        self.effects.allocate_soon()

    def status(self) -> quota_pb2.QuotaStatus:
        status = quota_pb2.QuotaStatus()
        for role, quota in sorted(self._state.items()):
            if any(quota.guarantee.values()):
                info = status.infos.add(role=role, principal=quota.principal)
                for name, value in sorted(quota.guarantee.items()):
                    if value:
                        info.guarantee.extend(Resources.scalar_of(name, value / 1000).to_proto())
            config = status.configs.add(role=role)
            for name, value in quota.guarantee.items():
                config.guarantees[name].value = value / 1000
            for name, value in quota.limit.items():
                config.limits[name].value = value / 1000
        return status

    # Weights --------------------------------------------------------------------------------
    def update_weights(self, infos: Iterable[mesos_pb2.WeightInfo]) -> None:
        weights: dict[str, float] = {}
        for info in infos:
            if not info.role:
                raise BadRequest("Invalid weight: 'role' is missing")
            self._check_role(info.role)
            if not info.HasField("weight") or not MIN_WEIGHT <= info.weight <= MAX_WEIGHT:
                raise BadRequest(f"Invalid weight for role '{info.role}': it must be a finite "
                                 f"number above 0, from {MIN_WEIGHT:g} to {MAX_WEIGHT:g}")
            weights[info.role] = info.weight
        for role, weight in weights.items():
            self.book.registry.weights[role] = weight
            self.allocator.set_weight(role, weight)
        self.effects.save_registry()
        self.effects.allocate_soon()

    def weights(self) -> list[mesos_pb2.WeightInfo]:
        merged = dict(self.flag_weights)
        merged.update(self.book.registry.weights)
        return [mesos_pb2.WeightInfo(role=role, weight=weight)
                for role, weight in sorted(merged.items())]
