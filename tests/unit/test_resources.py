"""Resources: the ``--resources`` text and JSON forms, arithmetic and validation, as in Mesos."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_runtime import resources
from agent_runtime.codec import jsonpb
from agent_runtime.errors import BadRequest
from agent_runtime.proto import mesos_pb2
from agent_runtime.resources import DYNAMIC, STATIC, Reservation, Resources, parse

SEED = "cpus:4;mem:2048;cpus(ads):8;ports:[31000-32000]"


def _ranges(r: Resources, name: str = "ports") -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for (key_name, _), value in r.items():
        if key_name == name:
            assert isinstance(value, tuple)
            out.extend(value)
    return out


# The text form ------------------------------------------------------------------------------


def test_the_documented_example_means_4_unreserved_and_8_reserved_cpus() -> None:
    r = parse(SEED)
    assert r.scalar("cpus") == 12
    assert r.unreserved().scalar("cpus") == 4
    assert r.reserved("ads").scalar("cpus") == 8
    assert r.reserved("ads").scalar("mem") == 0
    assert r.scalar("mem") == 2048
    assert _ranges(r) == [(31000, 32000)]
    assert r.roles() == {"ads"}


def test_a_role_in_parentheses_is_a_static_reservation() -> None:
    r = parse("cpus(ads):8")
    assert list(r) == [("cpus", (Reservation("ads", STATIC),))]


def test_the_text_form_round_trips_through_text() -> None:
    r = parse(SEED)
    assert parse(r.text()) == r


def test_text_keeps_every_digit_of_large_and_precise_scalars() -> None:
    # A 1.2 TB agent's memory in MB, and the 3 decimals Mesos keeps.
    assert parse("mem:1234567;cpus:1000.001").text() == "cpus:1000.001;mem:1234567"


def test_whitespace_and_empty_items_are_tolerated() -> None:
    assert parse(" cpus : 4 ; ;mem:2048; ") == parse("cpus:4;mem:2048")


def test_repeated_names_add_up() -> None:
    assert parse("cpus:1;cpus:2.5") == parse("cpus:3.5")


def test_sets_in_the_text_form() -> None:
    r = parse("disks:{sda, sdb}")
    assert r[("disks", ())] == frozenset({"sda", "sdb"})


def test_default_role_applies_to_items_without_one() -> None:
    r = parse("cpus:1;mem(eng):64", default_role="ads")
    assert r.reserved("ads").scalar("cpus") == 1
    assert r.reserved("eng").scalar("mem") == 64
    assert not r.unreserved()


def test_star_is_the_unreserved_role() -> None:
    assert parse("cpus(*):2") == parse("cpus:2")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cpus:-1", "negative"),
        ("cpus:nan", "finite"),
        ("cpus:inf", "finite"),
        ("mem:-inf", "finite"),
        ("cpus:1e308", "too large"),
        ("cpus:abc", "invalid scalar"),
        ("cpus", "cannot parse"),
        ("ports:[32000-31000]", "inverted"),
        ("ports:[a-b]", "invalid range"),
        ("ports:[1-99999999999999999999999]", "invalid range"),
        ("disks:{a,a}", "duplicate"),
        ("gpus:0.5", "whole number"),
        ("cpus():4", "empty"),
        ("cpus(/ads):4", "role"),
        ("cpus(a b):4", "role"),
        ("cpus(..):4", "role"),
        ("cpus(-ads):4", "role"),
        ("cp$us:4", "cannot parse|invalid resource name"),
    ],
)
def test_invalid_text_is_a_bad_request(text: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        parse(text)


# The JSON form ------------------------------------------------------------------------------


def test_the_json_form_equals_the_text_form() -> None:
    body = json.dumps([
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 4}},
        {"name": "mem", "type": "SCALAR", "scalar": {"value": 2048}},
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 8}, "role": "ads"},
        {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 31000,
                                                                  "end": 32000}]}},
    ])
    assert parse(body) == parse(SEED)


def test_json_default_role_only_fills_resources_without_a_role() -> None:
    body = json.dumps([
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}},
        {"name": "mem", "type": "SCALAR", "scalar": {"value": 64}, "role": "eng"},
    ])
    r = parse(body, default_role="ads")
    assert r.reserved("ads").scalar("cpus") == 1
    assert r.reserved("eng").scalar("mem") == 64


def test_json_reservations_stack_refines_to_a_sub_role() -> None:
    body = json.dumps([{"name": "cpus", "type": "SCALAR", "scalar": {"value": 2},
                        "reservations": [
                            {"type": "STATIC", "role": "eng"},
                            {"type": "DYNAMIC", "role": "eng/dev", "principal": "ops"}]}])
    r = parse(body)
    assert list(r) == [("cpus", (Reservation("eng", STATIC),
                                 Reservation("eng/dev", DYNAMIC, "ops")))]
    assert r.reserved("eng/dev").scalar("cpus") == 2
    assert not r.reserved("eng")  # owned by the innermost role


def test_the_old_reservation_format_is_a_dynamic_reservation() -> None:
    body = json.dumps([{"name": "mem", "type": "SCALAR", "scalar": {"value": 64},
                        "role": "ads", "reservation": {"principal": "ops"}}])
    assert list(parse(body)) == [("mem", (Reservation("ads", DYNAMIC, "ops"),))]


@pytest.mark.parametrize(
    ("items", "message"),
    [
        # Each refinement must be a strict sub-role of the one before (Resources::validate).
        ([{"type": "STATIC", "role": "eng"}, {"type": "DYNAMIC", "role": "ads"}], "sub-role"),
        ([{"type": "STATIC", "role": "eng"}, {"type": "DYNAMIC", "role": "eng"}], "sub-role"),
        ([{"type": "STATIC", "role": "eng"}, {"type": "DYNAMIC", "role": "engineering"}],
         "sub-role"),
        ([{"type": "STATIC", "role": "eng"}, {"type": "STATIC", "role": "eng/dev"}], "STATIC"),
        ([{"type": "DYNAMIC", "role": "*"}], "'\\*'"),
    ],
)
def test_invalid_reservation_stacks_are_rejected(items: list[object], message: str) -> None:
    body = json.dumps([{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1},
                        "reservations": items}])
    with pytest.raises(BadRequest, match=message):
        parse(body)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[{"name": "cpus", "type": "SCALAR", "scalar": {"value": NaN}}]', "NaN"),
        ('[{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1e400}}]', "finite|NaN"),
        ('[{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1e308}}]', "too large"),
        ('[{"name": "cpus", "type": "SCALAR", "scalar": {"value": -2}}]', "negative"),
        ('[{"name": "cpus", "type": "SCALAR"}]', "without 'scalar'"),
        ('[{"name": "cpus", "type": "SCALAR", "scalar": {"value": "x"}}]', "scalar.value"),
        ('[{"type": "SCALAR", "scalar": {"value": 1}}]', "name"),
        ("[1]", "JSON object"),
        ('[{"name": "cpus"', "invalid JSON"),
        ("[" * 100_000 + "]" * 100_000, "invalid JSON"),
    ],
)
def test_invalid_json_is_a_bad_request(body: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        parse(body)


# Scalars are fixed point ----------------------------------------------------------------------


def test_scalars_keep_three_decimal_digits_without_drift() -> None:
    total = Resources()
    for _ in range(10):
        total = total + parse("cpus:0.1")
    assert total == parse("cpus:1")
    assert parse("cpus:0.1") + parse("cpus:0.2") == parse("cpus:0.3")


def test_scalars_round_half_away_from_zero_like_llround() -> None:
    # Mesos's convertToFixed is llround(value * 1000); 0.0025 * 1000 is exactly 2.5.
    assert parse("cpus:0.0025") == parse("cpus:0.003")
    assert resources.to_millis(0.0005) == 1
    assert resources.to_millis(-0.0025) == -3


def test_a_scalar_that_rounds_to_zero_is_no_resource() -> None:
    assert not parse("cpus:0.0004")
    assert not parse("cpus:0")


# Arithmetic -------------------------------------------------------------------------------------


def test_adding_merges_overlapping_and_adjacent_ranges() -> None:
    total = parse("ports:[40-50,1-10]") + parse("ports:[11-20,45-60]")
    assert _ranges(total) == [(1, 20), (40, 60)]


def test_parsing_merges_ranges_too() -> None:
    assert _ranges(parse("ports:[5-5,1-4,3-3,100-200]")) == [(1, 5), (100, 200)]


def test_adding_sets_is_a_union() -> None:
    union = (parse("disks:{a,b}") + parse("disks:{b,c}"))[("disks", ())]
    assert union == frozenset({"a", "b", "c"})


def test_subtracting_a_port_splits_the_range() -> None:
    left = parse("ports:[31000-32000]") - parse("ports:[31500-31500]")
    assert _ranges(left) == [(31000, 31499), (31501, 32000)]
    assert _ranges(parse("ports:[1-10]") - parse("ports:[1-3,8-20]")) == [(4, 7)]


def test_subtracting_more_than_there_is_leaves_nothing() -> None:
    assert not (parse("cpus:1") - parse("cpus:2"))
    assert not (parse("ports:[1-5]") - parse("ports:[0-9]"))


def test_subtraction_keeps_roles_apart() -> None:
    left = parse(SEED) - parse("cpus:4")
    assert left.unreserved().scalar("cpus") == 0
    assert left.reserved("ads").scalar("cpus") == 8


def test_contains_scalars_ranges_and_sets() -> None:
    r = parse(SEED + ";disks:{a,b}")
    assert r.contains(parse("cpus:4;mem:1024;ports:[31000-31010,31999-32000];disks:{b}"))
    assert not r.contains(parse("cpus:4.001"))
    assert not r.contains(parse("ports:[30999-31000]"))
    assert not r.contains(parse("disks:{c}"))
    assert not r.contains(parse("gpus:1"))
    assert r.contains(Resources())


def test_reserved_and_unreserved_are_not_interchangeable() -> None:
    assert not parse("cpus(ads):8").contains(parse("cpus:1"))
    assert not parse("cpus:8").contains(parse("cpus(ads):1"))


def test_reserved_resources_are_allocatable_to_the_role_and_its_sub_roles() -> None:
    r = parse("cpus:1;cpus(eng):2;mem(ads):64")
    assert r.allocatable_to("eng").scalar("cpus") == 3
    assert r.allocatable_to("eng/dev").scalar("cpus") == 3
    assert r.allocatable_to("engineering").scalar("cpus") == 1
    assert r.allocatable_to("ads").scalar("mem") == 64
    assert r.allocatable_to("*") == parse("cpus:1")


def test_flat_is_the_state_endpoint_shape() -> None:
    assert parse(SEED).flat() == {
        "cpus": 12.0, "gpus": 0.0, "mem": 2048.0, "disk": 0.0, "ports": "[31000-32000]",
    }


def test_to_proto_writes_both_reservation_formats_and_the_allocation_role() -> None:
    protos = parse("cpus(ads):1.5;mem:64").to_proto(allocation_role="ads")
    by_name = {p.name: p for p in protos}
    assert by_name["cpus"].role == "ads"
    assert [(r.type, r.role) for r in by_name["cpus"].reservations] == [(STATIC, "ads")]
    assert by_name["cpus"].scalar.value == 1.5
    assert by_name["mem"].role == "*" and not by_name["mem"].reservations
    assert {p.allocation_info.role for p in protos} == {"ads"}


def test_from_proto_validates_like_the_parsers() -> None:
    bad = mesos_pb2.Resource(name="cpus", type=mesos_pb2.Value.SCALAR)
    bad.scalar.value = float("nan")
    with pytest.raises(BadRequest, match="finite"):
        Resources.from_proto([bad])


# Properties ---------------------------------------------------------------------------------------

_roles = st.sampled_from(["*", "ads", "eng", "eng/dev"])
_scalar = st.integers(min_value=0, max_value=10**7).map(lambda m: m / 1000)
_port_ranges = st.lists(
    st.tuples(st.integers(0, 200), st.integers(0, 50)).map(lambda p: (p[0], p[0] + p[1])),
    max_size=4,
)
_items = st.sets(st.sampled_from("abcdef"), max_size=4)


@st.composite
def _resources(draw: st.DrawFn) -> Resources:
    parts = []
    for name in draw(st.lists(st.sampled_from(["cpus", "mem", "disk"]), max_size=4)):
        role = draw(_roles)
        parts.append(f"{name}{'' if role == '*' else f'({role})'}:{draw(_scalar)}")
    for role in draw(st.lists(_roles, max_size=2)):
        ranges = draw(_port_ranges)
        if ranges:
            body = ",".join(f"{b}-{e}" for b, e in ranges)
            parts.append(f"ports{'' if role == '*' else f'({role})'}:[{body}]")
    items = draw(_items)
    if items:
        parts.append("disks:{" + ",".join(sorted(items)) + "}")
    return parse(";".join(parts))


@settings(max_examples=150, deadline=None)
@given(a=_resources(), b=_resources())
def test_arithmetic_laws(a: Resources, b: Resources) -> None:
    assert a + b == b + a
    assert (a + b).contains(a) and (a + b).contains(b)
    assert a.contains(a - b)
    assert ((a - b) + b).contains(a)
    if a.contains(b):
        assert (a - b) + b == a


@settings(max_examples=150, deadline=None)
@given(r=_resources())
def test_text_and_protobuf_json_round_trips(r: Resources) -> None:
    assert parse(r.text()) == r
    as_json = json.dumps([jsonpb.to_dict(p) for p in r.to_proto()])
    assert parse(as_json) == r
