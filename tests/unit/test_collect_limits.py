"""Hostile events: each breaks one limit of where it would be stored and is refused alone, by reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cdp.collect import RequestFacts, decode_body, normalise_event
from cdp.collect.limits import MAX_DEPTH, EventLimits
from cdp.errors import InvalidEvent

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
FACTS = RequestFacts(source_id="src_1", received_at=NOW)


def stored(raw: dict[str, Any], facts: RequestFacts = FACTS) -> dict[str, Any]:
    return normalise_event(raw, route_type=None, facts=facts).event


def reason_for(body: bytes | dict[str, Any], facts: RequestFacts = FACTS) -> str:
    raw = decode_body(body) if isinstance(body, bytes) else body
    with pytest.raises(InvalidEvent) as raised:
        normalise_event(raw, route_type=None, facts=facts)
    return raised.value.reason


def track(**fields: Any) -> dict[str, Any]:
    return {"type": "track", "userId": "u1", "event": "Clicked", **fields}


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    "body",
    [
        b'{"type": "track", "userId": "u1", "event": "Clicked\\ud800"}',
        b'{"type": "track", "userId": "u1", "event": "E", "properties": {"k\\udfff": 1}}',
        b'{"type": "track", "userId": "\\ud800", "event": "E"}',
        b'{"type": "track", "userId": "u1", "event": "E", "context": {"page": {"url": "\\udc00"}}}',
    ],
)
def test_a_lone_surrogate_in_any_field_is_invalid_unicode(body: bytes) -> None:
    assert reason_for(body) == "invalid_unicode"


@pytest.mark.parametrize(
    "body",
    [
        b'{"type": "track", "userId": "u1", "event": "E", "properties": {"a": 1, "a": 2}}',
        b'{"type": "track", "userId": "u1", "userId": "u2", "event": "E"}',
        b'{"type": "track", "userId": "u1", "event": "E", "context": {"ip": "1", "ip": "2"}}',
        b'{"type": "track", "userId": "u1", "event": "E", "properties": {"l": [{"x": 1, "x": 1}]}}',
    ],
)
def test_an_object_naming_a_key_twice_is_ambiguous(body: bytes) -> None:
    assert reason_for(body) == "duplicate_key"


@pytest.mark.parametrize(
    "literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"9223372036854775808", b"-9223372036854775809"]
)
def test_a_number_no_store_can_hold_is_invalid(literal: bytes) -> None:
    body = b'{"type": "track", "userId": "u1", "event": "E", "properties": {"n": [' + literal + b"]}}"
    assert reason_for(body) == "invalid_number"


def test_the_widest_64_bit_integers_are_kept() -> None:
    properties = {"max": 2**63 - 1, "min": -(2**63), "big": 1.7e308}
    assert stored(track(properties=properties))["properties"] == properties


def test_nesting_up_to_the_limit_is_kept_and_one_level_more_is_too_deep() -> None:
    # The event is the first level, properties the second.
    assert stored(track(properties=nested(MAX_DEPTH - 2)))
    assert reason_for(track(properties=nested(MAX_DEPTH - 1))) == "too_deep"
    assert reason_for(track(properties={"list": [nested(MAX_DEPTH)]})) == "too_deep"


@pytest.mark.parametrize(
    "raw",
    [
        track(userId="u" * 1025),
        track(anonymousId="é" * 513),
        {"type": "group", "userId": "u1", "groupId": "g" * 1025},
        {"type": "alias", "userId": "u1", "previousId": "p" * 1025},
        track(messageId="m" * 1025),
        {"type": "identify", "userId": "u1", "traits": {"email": "a" * 1020 + "@x.io"}},
        track(context={"traits": {"phone": "1" * 1025}}),
    ],
)
def test_an_identifier_over_1024_bytes_is_too_long(raw: dict[str, Any]) -> None:
    assert reason_for(raw) == "identifier_too_long"


def test_an_identifier_of_1024_bytes_is_kept() -> None:
    assert stored(track(userId="u" * 1024))["userId"] == "u" * 1024


def test_a_custom_identifier_path_of_the_identity_config_is_held_to_the_limit() -> None:
    limits = EventLimits(identifier_paths=lambda: ("context.device.id",))
    facts = RequestFacts(source_id="src_1", received_at=NOW, limits=limits)
    raw = track(context={"device": {"id": "d" * 1025}})
    assert reason_for(raw, facts) == "identifier_too_long"
    assert stored(raw)  # a path the config does not name is a plain value


def test_a_group_s_traits_are_not_read_as_a_person_s_identifiers() -> None:
    raw = {"type": "group", "userId": "u1", "groupId": "g", "traits": {"email": "a" * 2000}}
    assert stored(raw)["traits"]["email"] == "a" * 2000


def test_a_trait_or_property_name_over_256_bytes_is_too_long() -> None:
    assert reason_for(track(properties={"k" * 257: 1})) == "key_too_long"
    assert reason_for({"type": "identify", "userId": "u1", "traits": {"ü" * 129: 1}}) == "key_too_long"
    assert reason_for(track(context={"traits": {"t" * 257: 1}})) == "key_too_long"
    assert stored(track(properties={"k" * 256: 1}))


def test_a_long_key_inside_a_value_is_part_of_the_value() -> None:
    assert stored(track(properties={"cart": {"k" * 300: 1}}))


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (track(properties=nested(MAX_DEPTH)), "too_deep"),
        (track(properties={"n": 2**63}), "invalid_number"),
        (track(properties={"n": [-(2**63) - 1]}), "invalid_number"),
        (track(properties={"n": float("nan")}), "invalid_number"),
    ],
)
def test_a_body_without_duplicate_keys_is_still_held_to_every_limit(raw: dict[str, Any], reason: str) -> None:
    facts = RequestFacts(source_id="src_1", received_at=NOW, may_hold_duplicate_keys=False)
    assert reason_for(raw, facts) == reason


def test_a_trait_value_over_8_kb_is_too_large() -> None:
    identify = {"type": "identify", "userId": "u1"}
    assert reason_for({**identify, "traits": {"bio": "b" * 8193}}) == "trait_value_too_large"
    assert reason_for({**identify, "traits": {"tags": ["t" * 100] * 90}}) == "trait_value_too_large"
    assert stored({**identify, "traits": {"bio": "b" * 8192}})


@pytest.mark.parametrize("name", ["Clicked\n", "Clicked\x00", "\x7fClicked", "Tab\there"])
def test_a_control_character_in_an_event_name_is_invalid(name: str) -> None:
    assert reason_for(track(event=name)) == "invalid_event_name"
    assert reason_for({"type": "page", "userId": "u1", "name": name}) == "invalid_event_name"


def test_an_event_name_over_1024_bytes_is_too_long() -> None:
    assert reason_for(track(event="E" * 1025)) == "event_name_too_long"
    assert stored(track(event="Größe " * 100))


# ------------------------------------------------------------------ event time
def test_an_event_dated_beyond_five_minutes_ahead_is_stored_at_received_at_with_its_own_time_kept() -> None:
    event = stored(track(timestamp="9999-12-31T23:59:59Z"))
    assert event["timestamp"] == "2024-05-01T12:00:00.000Z"
    assert event["originalTimestamp"] == "9999-12-31T23:59:59.000Z"


def test_an_event_dated_up_to_five_minutes_ahead_keeps_its_time() -> None:
    assert stored(track(timestamp="2024-05-01T12:05:00Z"))["timestamp"] == "2024-05-01T12:05:00.000Z"
    assert stored(track(timestamp="2024-05-01T12:05:01Z"))["timestamp"] == "2024-05-01T12:00:00.000Z"


def test_a_corrected_time_in_the_future_is_clamped_too() -> None:
    event = stored(track(originalTimestamp="2024-05-01T12:00:00Z", sentAt="2024-04-01T12:00:00Z"))
    assert event["timestamp"] == "2024-05-01T12:00:00.000Z"
    assert event["originalTimestamp"] == "2024-05-01T12:00:00.000Z"


def test_an_event_dated_before_the_lake_s_first_day_is_stored_at_received_at() -> None:
    event = stored(track(timestamp="1970-01-01T00:00:00Z"))
    assert event["timestamp"] == "2024-05-01T12:00:00.000Z"
    assert event["originalTimestamp"] == "1970-01-01T00:00:00.000Z"
    assert stored(track(timestamp="2015-01-01T00:00:00Z"))["timestamp"] == "2015-01-01T00:00:00.000Z"


def test_how_far_ahead_an_event_may_be_dated_is_a_setting() -> None:
    facts = RequestFacts(source_id="src_1", received_at=NOW, limits=EventLimits(max_future=timedelta(hours=1)))
    event = stored(track(timestamp="2024-05-01T12:30:00Z"), facts)
    assert event["timestamp"] == "2024-05-01T12:30:00.000Z"


def test_an_accepted_event_is_stored_as_valid_utf8_json() -> None:
    record = normalise_event(track(properties={"emoji": "😀", "n": 1.5}), route_type=None, facts=FACTS)
    assert json.loads(record.data.decode("utf-8"))["properties"] == {"emoji": "😀", "n": 1.5}
