"""The JSON codec against Mesos's JSON rules (stout's ``protobuf.hpp`` / ``jsonify``)."""

from __future__ import annotations

import base64
import json
import string
from typing import TypeVar

import pytest
from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_runtime.codec import jsonpb
from agent_runtime.errors import BadRequest
from agent_runtime.proto import mesos_pb2, scheduler_pb2

Call = scheduler_pb2.Call
Event = scheduler_pb2.Event
M = TypeVar("M", bound=Message)

# seed 004's register.json: one capability object where FrameworkInfo has a repeated field.
SUBSCRIBE_BODY = """{
  "type": "SUBSCRIBE",
  "subscribe": {
    "framework_info": {
      "user": "root",
      "name": "Example HTTP Framework",
      "roles": ["test"],
      "capabilities": {"type": "MULTI_ROLE"}
    }
  }
}"""


def _round_trip(message: M) -> M:
    return jsonpb.parse(jsonpb.dumps(message), type(message))


# Writing ----------------------------------------------------------------------------------


def test_field_names_are_the_proto_snake_case_names() -> None:
    info = mesos_pb2.FrameworkInfo(user="u", name="n", failover_timeout=7.5, webui_url="http://x")
    out = jsonpb.to_dict(info)
    assert out["failover_timeout"] == 7.5
    assert out["webui_url"] == "http://x"
    assert "failoverTimeout" not in out and "webuiUrl" not in out


def test_enums_are_written_as_their_names() -> None:
    status = mesos_pb2.TaskStatus(state=mesos_pb2.TASK_RUNNING,
                                  source=mesos_pb2.TaskStatus.SOURCE_EXECUTOR)
    assert jsonpb.to_dict(status) == {"state": "TASK_RUNNING", "source": "SOURCE_EXECUTOR"}
    assert jsonpb.to_dict(Call(type=Call.SUBSCRIBE)) == {"type": "SUBSCRIBE"}


def test_bytes_are_written_as_standard_base64() -> None:
    raw = bytes(range(256))
    call = Call(type=Call.MESSAGE)
    call.message.data = raw
    text = jsonpb.to_dict(call)["message"]["data"]
    assert base64.b64decode(text, validate=True) == raw


def test_64_bit_integers_are_plain_json_numbers() -> None:
    # Mesos writes "begin": 31000, not proto3's "31000" string.
    resource = mesos_pb2.Resource(name="ports", type=mesos_pb2.Value.RANGES)
    resource.ranges.range.add(begin=31000, end=2**64 - 1)
    decoded = json.loads(jsonpb.dumps(resource))
    assert decoded["ranges"]["range"] == [{"begin": 31000, "end": 2**64 - 1}]


def test_only_set_fields_are_written() -> None:
    assert jsonpb.to_dict(mesos_pb2.FrameworkInfo(name="n")) == {"name": "n"}


def test_dumps_is_one_line_even_when_strings_hold_newlines() -> None:
    # RecordIO readers and curl users split on lines: no raw newline may appear in a record.
    event = Event(type=Event.ERROR)
    event.error.message = "line one\nline two\r\n"
    body = jsonpb.dumps(event)
    assert b"\n" not in body and b"\r" not in body
    assert json.loads(body)["error"]["message"] == "line one\nline two\r\n"


def test_map_fields_are_json_objects() -> None:
    info = mesos_pb2.FrameworkInfo(name="n")
    quantities = info.offer_filters["ads"].min_allocatable_resources.quantities.add()
    quantities.quantities["cpus"].value = 0.5
    out = jsonpb.to_dict(info)
    assert out["offer_filters"] == {
        "ads": {"min_allocatable_resources": {"quantities": [{"quantities": {"cpus": {
            "value": 0.5}}}]}}
    }
    assert _round_trip(info) == info


# Reading ----------------------------------------------------------------------------------


def test_seed_subscribe_body_accepts_a_single_object_for_a_list() -> None:
    call = jsonpb.parse(SUBSCRIBE_BODY, Call)
    info = call.subscribe.framework_info
    assert call.type == Call.SUBSCRIBE
    assert [c.type for c in info.capabilities] == [mesos_pb2.FrameworkInfo.Capability.MULTI_ROLE]
    assert list(info.roles) == ["test"]


def test_a_single_scalar_is_accepted_where_a_list_is_expected() -> None:
    call = jsonpb.parse('{"type": "SUPPRESS", "suppress": {"roles": "ads"}}', Call)
    assert list(call.suppress.roles) == ["ads"]


def test_null_means_unset() -> None:
    info = jsonpb.parse('{"name": "n", "hostname": null, "id": null}', mesos_pb2.FrameworkInfo)
    assert not info.HasField("hostname")
    assert not info.HasField("id")


def test_unknown_fields_are_ignored_as_mesos_does() -> None:
    # stout's parser looks up each key and skips the ones the message does not have, so
    # clients built against newer protos keep working.
    info = jsonpb.parse('{"name": "n", "from_the_future": {"x": [1, 2]}}',
                        mesos_pb2.FrameworkInfo)
    assert info == mesos_pb2.FrameworkInfo(name="n")


def test_bytes_are_read_from_base64() -> None:
    uuid = bytes(range(16))
    body = json.dumps({"type": "ACKNOWLEDGE", "acknowledge": {
        "uuid": base64.b64encode(uuid).decode(), "task_id": {"value": "t"}}})
    assert jsonpb.parse(body, Call).acknowledge.uuid == uuid


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_literals_are_rejected(literal: str) -> None:
    body = f'{{"name": "n", "failover_timeout": {literal}}}'
    with pytest.raises(BadRequest, match=literal.lstrip("-")):
        jsonpb.parse(body, mesos_pb2.FrameworkInfo)


@pytest.mark.parametrize("value", ['"NaN"', '"Infinity"', '"-inf"', "1e400", "-1e400"])
def test_non_finite_numbers_are_rejected_naming_the_field(value: str) -> None:
    # 1e400 is valid JSON that Python reads as inf; strings reach the float conversion.
    info = f'{{"user": "u", "name": "n", "failover_timeout": {value}}}'
    body = f'{{"type": "SUBSCRIBE", "subscribe": {{"framework_info": {info}}}}}'
    with pytest.raises(BadRequest) as caught:
        jsonpb.parse(body, Call)
    assert "Call.subscribe.framework_info.failover_timeout" in str(caught.value)
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("framework_info", "path"),
    [
        ('{"user": 5}', "Call.subscribe.framework_info.user"),
        ('{"failover_timeout": true}', "Call.subscribe.framework_info.failover_timeout"),
        ('{"failover_timeout": [1]}', "Call.subscribe.framework_info.failover_timeout"),
        ('{"checkpoint": "yes"}', "Call.subscribe.framework_info.checkpoint"),
        ('{"checkpoint": 1}', "Call.subscribe.framework_info.checkpoint"),
        ('{"roles": ["a", 1]}', "Call.subscribe.framework_info.roles[1]"),
        ('{"capabilities": [{"type": "MULTI_ROLE"}, {"type": true}]}',
         "Call.subscribe.framework_info.capabilities[1].type"),
        ('{"capabilities": [{"type": {"x": 1}}]}',
         "Call.subscribe.framework_info.capabilities[0].type"),
        ('{"capabilities": ["MULTI_ROLE"]}', "Call.subscribe.framework_info.capabilities[0]"),
        ('{"id": "abc"}', "Call.subscribe.framework_info.id"),
        ('{"offer_filters": ["ads"]}', "Call.subscribe.framework_info.offer_filters"),
        ('{"offer_filters": {"ads": 3}}', "Call.subscribe.framework_info.offer_filters.ads"),
    ],
)
def test_wrong_types_give_bad_request_with_the_path(framework_info: str, path: str) -> None:
    body = f'{{"type": "SUBSCRIBE", "subscribe": {{"framework_info": {framework_info}}}}}'
    with pytest.raises(BadRequest) as caught:
        jsonpb.parse(body, Call)
    assert str(caught.value).startswith(path + ":"), str(caught.value)


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ('{"type": "SUBSCRIBED", "subscribed": {"master_info": {"port": -1}}}',
         "Event.subscribed.master_info.port"),
        ('{"type": "SUBSCRIBED", "subscribed": {"master_info": {"port": 4294967296}}}',
         "Event.subscribed.master_info.port"),
        ('{"type": "SUBSCRIBED", "subscribed": {"master_info": {"port": 5050.5}}}',
         "Event.subscribed.master_info.port"),
        ('{"type": "FAILURE", "failure": {"status": "one"}}', "Event.failure.status"),
        ('{"type": "MESSAGE", "message": {"data": "not base64!"}}', "Event.message.data"),
        ('{"type": "MESSAGE", "message": {"data": 12}}', "Event.message.data"),
    ],
)
def test_bad_numbers_and_bytes_give_bad_request_with_the_path(body: str, path: str) -> None:
    with pytest.raises(BadRequest) as caught:
        jsonpb.parse(body, Event)
    assert str(caught.value).startswith(path + ":"), str(caught.value)


@pytest.mark.parametrize("body", ["[]", '"call"', "3", "null", "{", "", b"\xff\xfe{}"])
def test_a_body_that_is_not_a_json_object_is_a_bad_request(body: str | bytes) -> None:
    with pytest.raises(BadRequest):
        jsonpb.parse(body, Call)


def test_a_lone_surrogate_in_a_map_key_is_a_bad_request() -> None:
    # json.loads lets "\ud800" through; protobuf refuses it as a map key. Used to escape as
    # a UnicodeEncodeError (an HTTP 500).
    body = '{"name": "n", "offer_filters": {"\\ud800": {}}}'
    with pytest.raises(BadRequest, match="offer_filters") as caught:
        jsonpb.parse(body, mesos_pb2.FrameworkInfo)
    str(caught.value).encode("utf-8")  # the message itself must be sendable


def test_deeply_nested_json_is_a_bad_request_not_a_recursion_error() -> None:
    body = '{"type": "SUBSCRIBE", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(BadRequest, match="nested"):
        jsonpb.parse(body, Call)


def _nested_container_id(depth: int) -> str:
    return '{"parent": ' * depth + '{"value": "root"}' + "}" * depth


def test_recursive_messages_nest_as_deep_as_protobuf_allows() -> None:
    container = jsonpb.parse(_nested_container_id(jsonpb.MAX_DEPTH), mesos_pb2.ContainerID)
    # Whatever JSON gives us must survive the binary encoding the agent link uses.
    assert mesos_pb2.ContainerID.FromString(container.SerializeToString()) == container
    assert _round_trip(container) == container


@pytest.mark.parametrize("depth", [jsonpb.MAX_DEPTH + 1, 900])
def test_recursive_messages_nested_too_deep_are_rejected(depth: int) -> None:
    # 900 levels used to pass the parser and then blow the stack while being written out.
    with pytest.raises(BadRequest, match="nested"):
        jsonpb.parse(_nested_container_id(depth), mesos_pb2.ContainerID)


# Scheduler Call / Event round trips -------------------------------------------------------


def _calls() -> list[scheduler_pb2.Call]:
    subscribe = Call(type=Call.SUBSCRIBE)
    info = subscribe.subscribe.framework_info
    info.user, info.name, info.failover_timeout, info.checkpoint = "root", "fw", 604800.0, True
    info.roles.extend(["ads", "eng/dev"])
    info.capabilities.add(type=mesos_pb2.FrameworkInfo.Capability.MULTI_ROLE)
    info.capabilities.add(type=mesos_pb2.FrameworkInfo.Capability.PARTITION_AWARE)
    info.labels.labels.add(key="team", value="δ")
    subscribe.subscribe.suppressed_roles.append("eng/dev")

    accept = Call(type=Call.ACCEPT)
    accept.framework_id.value = "m-0000"
    accept.accept.offer_ids.add(value="m-O1")
    accept.accept.filters.refuse_seconds = 30.0
    operation = accept.accept.operations.add(type=mesos_pb2.Offer.Operation.LAUNCH)
    task = operation.launch.task_infos.add(name="t")
    task.task_id.value = "t-1"
    task.agent_id.value = "m-S0"
    task.command.value = "sleep 10"
    task.command.shell = True
    task.data = b"\x00\n\xff"
    cpus = task.resources.add(name="cpus", type=mesos_pb2.Value.SCALAR)
    cpus.scalar.value = 0.1
    cpus.allocation_info.role = "ads"
    ports = task.resources.add(name="ports", type=mesos_pb2.Value.RANGES)
    ports.ranges.range.add(begin=31000, end=31001)

    decline = Call(type=Call.DECLINE)
    decline.decline.offer_ids.add(value="m-O2")
    decline.decline.filters.refuse_seconds = 0.0

    acknowledge = Call(type=Call.ACKNOWLEDGE)
    acknowledge.acknowledge.uuid = bytes(range(16))
    acknowledge.acknowledge.task_id.value = "t-1"
    acknowledge.acknowledge.agent_id.value = "m-S0"

    reconcile = Call(type=Call.RECONCILE)
    reconcile.reconcile.tasks.add().task_id.value = "t-1"

    kill = Call(type=Call.KILL)
    kill.kill.task_id.value = "t-1"
    kill.kill.kill_policy.grace_period.nanoseconds = 3_000_000_000

    revive = Call(type=Call.REVIVE)
    revive.revive.roles.append("ads")
    message = Call(type=Call.MESSAGE)
    message.message.data = b"\x00binary\n"
    return [subscribe, accept, decline, acknowledge, reconcile, kill, revive, message,
            Call(type=Call.TEARDOWN), Call(type=Call.SUPPRESS)]


def _events() -> list[scheduler_pb2.Event]:
    subscribed = Event(type=Event.SUBSCRIBED)
    subscribed.subscribed.framework_id.value = "m-0000"
    subscribed.subscribed.heartbeat_interval_seconds = 15.0
    subscribed.subscribed.master_info.port = 5050
    subscribed.subscribed.master_info.ip = 2**32 - 1

    offers = Event(type=Event.OFFERS)
    offer = offers.offers.offers.add(hostname="h")
    offer.id.value, offer.framework_id.value, offer.agent_id.value = "m-O4", "m-0000", "m-S0"
    offer.allocation_info.role = "ads"
    mem = offer.resources.add(name="mem", type=mesos_pb2.Value.SCALAR, role="ads")
    mem.scalar.value = 2048.0
    mem.reservations.add(type=mesos_pb2.Resource.ReservationInfo.STATIC, role="ads")
    disks = offer.resources.add(name="disks", type=mesos_pb2.Value.SET)
    disks.set.item.extend(["sda", "sdb"])

    update = Event(type=Event.UPDATE)
    status = update.update.status
    status.task_id.value = "t-1"
    status.state = mesos_pb2.TASK_FAILED
    status.reason = mesos_pb2.TaskStatus.REASON_COMMAND_EXECUTOR_FAILED  # enum value 0
    status.uuid = bytes(range(16))
    status.timestamp = 1_700_000_000.123456

    failure = Event(type=Event.FAILURE)
    failure.failure.status = -9
    return [subscribed, offers, update, failure, Event(type=Event.HEARTBEAT)]


@pytest.mark.parametrize("call", _calls(), ids=lambda c: Call.Type.Name(c.type))
def test_scheduler_calls_round_trip(call: scheduler_pb2.Call) -> None:
    back = _round_trip(call)
    assert back == call
    assert back.SerializeToString(deterministic=True) == call.SerializeToString(
        deterministic=True)


@pytest.mark.parametrize("event", _events(), ids=lambda e: Event.Type.Name(e.type))
def test_scheduler_events_round_trip(event: scheduler_pb2.Event) -> None:
    assert _round_trip(event) == event


def test_an_enum_set_to_its_zero_value_is_kept() -> None:
    # REASON_COMMAND_EXECUTOR_FAILED is 0: proto2 presence, not the value, decides output.
    status = mesos_pb2.TaskStatus(reason=mesos_pb2.TaskStatus.REASON_COMMAND_EXECUTOR_FAILED)
    assert jsonpb.to_dict(status) == {"reason": "REASON_COMMAND_EXECUTOR_FAILED"}


# Properties ------------------------------------------------------------------------------

_names = st.text(alphabet=string.ascii_letters + string.digits + "_-./", min_size=1,
                 max_size=12)
_text = st.text(max_size=30).filter(lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s))
_finite = st.floats(allow_nan=False, allow_infinity=False)
_uint64 = st.integers(min_value=0, max_value=2**64 - 1)


@st.composite
def _resources(draw: st.DrawFn) -> mesos_pb2.Resource:
    res = mesos_pb2.Resource(name=draw(_names))
    kind = draw(st.sampled_from(["scalar", "ranges", "set"]))
    if kind == "scalar":
        res.type = mesos_pb2.Value.SCALAR
        res.scalar.value = draw(_finite)
    elif kind == "ranges":
        res.type = mesos_pb2.Value.RANGES
        for begin, end in draw(st.lists(st.tuples(_uint64, _uint64), max_size=3)):
            res.ranges.range.add(begin=begin, end=end)
    else:
        res.type = mesos_pb2.Value.SET
        res.set.item.extend(draw(st.lists(_text, max_size=3)))
    if draw(st.booleans()):
        res.role = draw(_names)
    for role in draw(st.lists(_names, max_size=2)):
        info = res.reservations.add(role=role, type=draw(st.sampled_from(
            [mesos_pb2.Resource.ReservationInfo.STATIC,
             mesos_pb2.Resource.ReservationInfo.DYNAMIC])))
        if draw(st.booleans()):
            info.principal = draw(_text)
    if draw(st.booleans()):
        res.allocation_info.role = draw(_names)
    return res


@st.composite
def _task_statuses(draw: st.DrawFn) -> mesos_pb2.TaskStatus:
    status = mesos_pb2.TaskStatus()
    status.task_id.value = draw(_text)
    status.state = draw(st.sampled_from(mesos_pb2.TaskState.values()))
    if draw(st.booleans()):
        status.message = draw(_text)
    if draw(st.booleans()):
        status.source = draw(st.sampled_from(mesos_pb2.TaskStatus.Source.values()))
    if draw(st.booleans()):
        status.reason = draw(st.sampled_from(mesos_pb2.TaskStatus.Reason.values()))
    if draw(st.booleans()):
        status.data = draw(st.binary(max_size=40))
    if draw(st.booleans()):
        status.uuid = draw(st.binary(min_size=16, max_size=16))
    if draw(st.booleans()):
        status.timestamp = draw(_finite)
    if draw(st.booleans()):
        status.healthy = draw(st.booleans())
    for key, value in draw(st.lists(st.tuples(_text, _text), max_size=3)):
        status.labels.labels.add(key=key, value=value)
    return status


@settings(max_examples=150, deadline=None)
@given(resources=st.lists(_resources(), max_size=4))
def test_random_resources_round_trip(resources: list[mesos_pb2.Resource]) -> None:
    offer = mesos_pb2.Offer()
    offer.resources.extend(resources)
    body = jsonpb.dumps(offer)
    assert b"\n" not in body
    assert jsonpb.parse(body, mesos_pb2.Offer) == offer


@settings(max_examples=150, deadline=None)
@given(status=_task_statuses())
def test_random_task_statuses_round_trip(status: mesos_pb2.TaskStatus) -> None:
    event = Event(type=Event.UPDATE)
    event.update.status.CopyFrom(status)
    body = jsonpb.dumps(event)
    assert b"\n" not in body
    assert jsonpb.parse(body, Event) == event
