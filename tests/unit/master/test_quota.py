"""QuotaBook with a book and fake effects: legacy and UPDATE_QUOTA requests, the capacity
heuristic, limits below consumption, --roles, removal, weights, and recovery into the
allocator."""

from __future__ import annotations

import pytest

from agent_runtime.errors import BadRequest, Conflict
from agent_runtime.master.config import MasterConfig
from agent_runtime.master.registry import Quota
from agent_runtime.proto import mesos_pb2, quota_pb2
from agent_runtime.resources import parse
from tests.unit.master.fakes import add_agent, add_framework, launch, offer_all, parts


def _legacy(role: str, guarantee: str, force: bool = False) -> quota_pb2.QuotaRequest:
    request = quota_pb2.QuotaRequest(role=role, force=force)
    request.guarantee.extend(parse(guarantee).to_proto())
    return request


def _config(role: str, *, guarantee: str = "", limit: str = "") -> quota_pb2.QuotaConfig:
    config = quota_pb2.QuotaConfig(role=role)
    for text, target in ((guarantee, config.guarantees), (limit, config.limits)):
        for name, value in parse(text).scalars().items() if text else ():
            target[name].value = value / 1000
    return config


def test_a_legacy_quota_is_guarantee_and_limit_and_must_fit_the_cluster() -> None:
    p = parts()
    add_agent(p, resources="cpus:4;mem:1024")
    with pytest.raises(Conflict, match="Not enough available cluster capacity"):
        p.quota.set_legacy(_legacy("web", "cpus:8"), "ops")
    assert p.effects.saves == 0

    p.quota.set_legacy(_legacy("web", "cpus:2"), "ops")
    assert p.book.registry.quota == {"web": Quota({"cpus": 2000}, {"cpus": 2000}, "ops")}
    assert p.effects.saves == 1 and p.effects.allocations_asked == 1
    with pytest.raises(BadRequest, match="already has quota"):
        p.quota.set_legacy(_legacy("web", "cpus:1"), None)
    # force skips the capacity check.
    p.quota.set_legacy(_legacy("batch", "cpus:100", force=True), None)
    (info,) = [i for i in p.quota.status().infos if i.role == "batch"]
    assert info.guarantee[0].scalar.value == 100


def test_update_is_all_or_nothing_and_limits_respect_consumption() -> None:
    p = parts()
    add_agent(p, resources="cpus:4;mem:1024")
    framework = add_framework(p, role="web")
    launch(p, framework, offer_all(p), ("t1", "cpus:2;mem:128"))
    with pytest.raises(BadRequest, match="already consumes"):
        p.quota.update([_config("web", limit="cpus:1")], force=False, principal=None)
    with pytest.raises(BadRequest, match="above its limit"):
        p.quota.update([_config("a", guarantee="cpus:2", limit="cpus:1")], False, None)
    with pytest.raises(BadRequest, match="more than once"):
        p.quota.update([_config("a", limit="cpus:1"), _config("a", limit="cpus:2")], False, None)
    assert p.book.registry.quota == {} and p.effects.saves == 0

    p.quota.update([_config("web", limit="cpus:1"), _config("a", guarantee="cpus:1")],
                   force=True, principal="ops")
    assert set(p.book.registry.quota) == {"web", "a"}
    # An empty config removes the role's quota.
    p.quota.update([_config("a")], force=False, principal=None)
    assert set(p.book.registry.quota) == {"web"}
    p.quota.remove("web")
    assert p.book.registry.quota == {}
    with pytest.raises(BadRequest, match="no quota set"):
        p.quota.remove("web")


def test_roles_outside_the_whitelist_are_refused() -> None:
    p = parts(MasterConfig(roles="web"))
    add_agent(p)
    with pytest.raises(BadRequest, match="not present in the master's --roles"):
        p.quota.set_legacy(_legacy("batch", "cpus:1"), None)
    with pytest.raises(BadRequest, match="--roles"):
        p.quota.update([_config("batch", limit="cpus:1")], False, None)
    p.quota.set_legacy(_legacy("web", "cpus:1"), None)


def test_weights_are_kept_over_the_flag_and_recovered_into_the_allocator() -> None:
    p = parts(MasterConfig(weights="web=2,batch=0.5"))
    p.quota.update_weights([mesos_pb2.WeightInfo(role="web", weight=3)])
    assert p.book.registry.weights == {"web": 3.0} and p.effects.saves == 1
    assert {(w.role, w.weight) for w in p.quota.weights()} == {("web", 3.0), ("batch", 0.5)}
    with pytest.raises(BadRequest, match="finite number above 0"):
        p.quota.update_weights([mesos_pb2.WeightInfo(role="web", weight=0)])

    again = parts()
    again.book.registry.weights["web"] = 4.0
    again.book.registry.quota["web"] = Quota({"cpus": 1000}, {"cpus": 2000})
    again.quota.recover()
    assert again.allocator.weight("web") == 4.0
    assert again.quota.status().configs[0].limits["cpus"].value == 2
