"""The local authorizer's evaluation, credentials parsing and executor tokens."""

from __future__ import annotations

import json

import jwt
import pytest

from agent_runtime.auth.acls import load_acls
from agent_runtime.auth.credentials import load_credential, load_credentials
from agent_runtime.auth.executor_tokens import ExecutorTokens
from agent_runtime.errors import FlagError, Forbidden, Unauthorized

ACLS = json.dumps({"permissive": False, "reserve_resources": [
    {"principals": {"values": ["ops"]}, "roles": {"values": ["ads"]}},
    {"principals": {"type": "NONE"}, "roles": {"values": ["ads"]}},
    {"principals": {"type": "ANY"}, "roles": {"type": "ANY"}}]})


@pytest.mark.parametrize(("principal", "role", "allowed"), [
    ("ops", "ads", True), ("dev", "ads", False), (None, "ads", False),
    ("dev", "web", True), (None, "web", True)])
def test_first_matching_rule_decides(principal: str | None, role: str, allowed: bool) -> None:
    assert load_acls(ACLS).allowed("reserve_resources", principal, role) is allowed


def test_no_rule_falls_to_permissive_and_refusal_names_the_action() -> None:
    authorizer = load_acls(ACLS)
    with pytest.raises(Forbidden, match="update_quotas"):
        authorizer.require("update_quotas", "ops", "ads")
    assert load_acls(None).allowed("update_quotas", None, "ads")


@pytest.mark.parametrize("bad", ['{"reserve_resource": []}', '{"permissive": "yes"}',
                                 '{"run_tasks": [{"principals": {"type": "SOME"}}]}', "[1"])
def test_bad_acls_are_flag_errors(bad: str) -> None:
    with pytest.raises(FlagError):
        load_acls(bad)


def test_credentials_in_both_formats_and_a_wrong_secret() -> None:
    text = load_credentials("ops s1\n# comment\ndev s2\n", "credentials")
    json_form = load_credentials('{"credentials": [{"principal": "ops", "secret": "s1"}]}',
                                 "credentials")
    assert text is not None and json_form is not None
    assert text.check("ops", "s1") and json_form.check("ops", "s1")
    assert not text.check("ops", "s2") and not text.check("nobody", "s1")
    credential = load_credential('{"principal": "agent", "secret": "x"}')
    assert credential is not None and credential.principal == "agent"
    with pytest.raises(FlagError):
        load_credentials("just-one-field", "credentials")


def test_tokens_name_one_executor_and_forgeries_fail() -> None:
    tokens = ExecutorTokens(b"k" * 32)
    claims = tokens.verify("Bearer " + tokens.sign("c1", "f1", "e1"))
    tokens.check(claims, "c1", "f1", "e1")
    with pytest.raises(Forbidden):
        tokens.check(claims, "c1", "f2", "e1")
    forged = jwt.encode({"cid": "c1", "fid": "f2", "eid": "e1"}, "another-key-of-32-bytes-or-more!",
                        algorithm="HS256")
    # alg "none": a header and claims with an empty signature.
    unsigned = jwt.encode({"cid": "c1", "fid": "f2", "eid": "e1"}, "", algorithm="none")
    for header in (None, "Basic abc", f"Bearer {forged}", f"Bearer {unsigned}"):
        with pytest.raises(Unauthorized):
            tokens.verify(header)
