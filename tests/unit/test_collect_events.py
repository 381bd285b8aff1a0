"""One Segment-spec event: what is required, what is generated, what is enriched."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from cdp.collect import RequestFacts, normalise_event, partition_key
from cdp.errors import InvalidEvent

NOW = datetime(2024, 5, 1, 12, 0, 0, 250_000, tzinfo=UTC)
FACTS = RequestFacts(source_id="src_1", received_at=NOW, ip="203.0.113.9", user_agent="curl/8")


def normalised(
    raw: dict[str, Any], route_type: str | None = "track", facts: RequestFacts = FACTS
) -> dict[str, Any]:
    return normalise_event(raw, route_type=route_type, facts=facts).event


def rejection(raw: object, route_type: str | None = None, facts: RequestFacts = FACTS) -> str:
    with pytest.raises(InvalidEvent) as raised:
        normalise_event(raw, route_type=route_type, facts=facts)
    return raised.value.reason


def test_a_track_event_with_a_user_id_is_accepted_with_its_fields() -> None:
    event = normalised({"userId": "u1", "event": "Signed Up", "properties": {"plan": "pro"}})
    assert (event["type"], event["userId"], event["event"], event["properties"]) == (
        "track",
        "u1",
        "Signed Up",
        {"plan": "pro"},
    )


def test_a_null_anonymous_id_next_to_a_user_id_is_fine_and_dropped() -> None:
    event = normalised({"userId": "u1", "anonymousId": None, "event": "E"})
    assert "anonymousId" not in event


def test_numeric_user_ids_are_kept_as_strings() -> None:
    assert normalised({"userId": 42, "event": "E"})["userId"] == "42"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ([1, 2], "not_an_object"),
        ("track", "not_an_object"),
        ({"userId": "u"}, "missing_type"),
        ({"type": "purchase", "userId": "u"}, "invalid_type"),
        ({"type": "track", "event": "E"}, "missing_identity"),
        ({"type": "track", "event": "E", "userId": "", "anonymousId": None}, "missing_identity"),
        ({"type": "track", "event": "E", "userId": True}, "invalid_user_id"),
        ({"type": "track", "event": "E", "anonymousId": {"id": 1}}, "invalid_anonymous_id"),
        ({"type": "track", "userId": "u"}, "missing_event"),
        ({"type": "track", "userId": "u", "event": 5}, "invalid_event_name"),
        ({"type": "group", "userId": "u"}, "missing_group_id"),
        ({"type": "alias", "userId": "u"}, "missing_previous_id"),
        ({"type": "identify", "userId": "u", "traits": ["a"]}, "invalid_traits"),
        ({"type": "page", "userId": "u", "properties": "x"}, "invalid_properties"),
        ({"type": "page", "userId": "u", "context": 3}, "invalid_context"),
        ({"type": "page", "userId": "u", "integrations": []}, "invalid_integrations"),
        ({"type": "page", "userId": "u", "messageId": ["m"]}, "invalid_message_id"),
        ({"type": "page", "userId": "u", "timestamp": "soon"}, "invalid_timestamp"),
        (
            {"type": "page", "userId": "u", "timestamp": "2024-01-01T00:00:00Z", "sentAt": 7},
            "invalid_timestamp",
        ),
        ({"type": "page", "userId": "u", "properties": {"pad": "x" * 40_000}}, "event_too_large"),
    ],
)
def test_an_invalid_event_is_rejected_with_a_reason_code(raw: object, reason: str) -> None:
    assert rejection(raw) == reason


def test_the_route_decides_the_type_of_a_single_event() -> None:
    assert normalised({"type": "page", "userId": "u"}, route_type="identify")["type"] == "identify"


def test_event_types_are_read_case_insensitively_in_a_batch() -> None:
    assert normalised({"type": "Identify", "userId": "u"}, route_type=None)["type"] == "identify"


def test_a_group_event_keeps_its_group_id() -> None:
    assert normalised({"type": "group", "userId": "u", "groupId": 7}, route_type=None)["groupId"] == "7"


def test_an_alias_event_keeps_its_previous_id() -> None:
    event = normalised({"userId": "u", "previousId": "anon-1"}, route_type="alias")
    assert event["previousId"] == "anon-1"


def test_a_message_id_that_is_not_a_uuid_is_kept_as_sent() -> None:
    assert (
        normalised({"userId": "u", "event": "E", "messageId": "node-123-abc"})["messageId"] == "node-123-abc"
    )


def test_a_missing_message_id_is_generated_as_a_uuid() -> None:
    uuid.UUID(normalised({"userId": "u", "event": "E"})["messageId"])


def test_a_missing_message_id_of_a_timestamped_event_is_the_same_on_retry() -> None:
    raw = {"userId": "u", "event": "E", "timestamp": "2024-05-01T11:00:00Z"}
    later = RequestFacts(source_id="src_1", received_at=datetime(2024, 5, 1, 13, tzinfo=UTC))
    assert normalised(dict(raw))["messageId"] == normalised(dict(raw), facts=later)["messageId"]


def test_identical_events_of_different_sources_get_different_generated_ids() -> None:
    raw = {"userId": "u", "event": "E", "timestamp": "2024-05-01T11:00:00Z"}
    other = RequestFacts(source_id="src_2", received_at=NOW)
    assert normalised(dict(raw))["messageId"] != normalised(dict(raw), facts=other)["messageId"]


def test_received_at_is_the_request_time() -> None:
    assert normalised({"userId": "u", "event": "E"})["receivedAt"] == "2024-05-01T12:00:00.250Z"


def test_without_any_client_time_the_timestamp_is_the_received_time() -> None:
    assert normalised({"userId": "u", "event": "E"})["timestamp"] == "2024-05-01T12:00:00.250Z"


def test_without_sent_at_the_client_timestamp_is_kept_normalised() -> None:
    event = normalised({"userId": "u", "event": "E", "timestamp": "2024-05-01T13:00:00+02:00"})
    assert event["timestamp"] == "2024-05-01T11:00:00.000Z"
    assert event["originalTimestamp"] == "2024-05-01T11:00:00.000Z"


def test_a_client_clock_ten_minutes_fast_is_corrected_with_sent_at() -> None:
    event = normalised(
        {"userId": "u", "event": "E", "timestamp": "2024-05-01T12:09:00Z", "sentAt": "2024-05-01T12:10:00Z"}
    )
    assert event["timestamp"] == "2024-05-01T11:59:00.250Z"
    assert event["originalTimestamp"] == "2024-05-01T12:09:00.000Z"


def test_original_timestamp_is_preferred_for_the_correction_when_sent() -> None:
    event = normalised(
        {
            "userId": "u",
            "event": "E",
            "originalTimestamp": "2024-05-01T12:09:00Z",
            "sentAt": "2024-05-01T12:10:00Z",
        }
    )
    assert event["timestamp"] == "2024-05-01T11:59:00.250Z"


def test_the_batch_sent_at_corrects_events_without_their_own() -> None:
    facts = RequestFacts(source_id="src_1", received_at=NOW, sent_at="2024-05-01T12:00:30.250Z")
    event = normalised({"userId": "u", "event": "E", "timestamp": "2024-05-01T12:00:00.250Z"}, facts=facts)
    assert event["timestamp"] == "2024-05-01T11:59:30.250Z"


def test_the_request_ip_and_user_agent_are_added_when_absent() -> None:
    context = normalised({"userId": "u", "event": "E"})["context"]
    assert (context["ip"], context["userAgent"]) == ("203.0.113.9", "curl/8")


def test_the_ip_and_user_agent_the_client_sent_are_kept() -> None:
    raw = {"userId": "u", "event": "E", "context": {"ip": "198.51.100.1", "userAgent": "app/1"}}
    context = normalised(raw)["context"]
    assert (context["ip"], context["userAgent"]) == ("198.51.100.1", "app/1")


def test_the_batch_context_is_inherited_and_the_event_context_wins() -> None:
    facts = RequestFacts(
        source_id="src_1", received_at=NOW, context={"library": {"name": "b"}, "locale": "fr"}
    )
    context = normalised({"userId": "u", "event": "E", "context": {"locale": "de"}}, facts=facts)["context"]
    assert (context["library"], context["locale"]) == ({"name": "b"}, "de")


def test_the_source_id_is_set_and_the_write_key_dropped() -> None:
    event = normalised({"userId": "u", "event": "E", "writeKey": "secret", "sourceId": "forged"})
    assert event["sourceId"] == "src_1"
    assert "writeKey" not in event


def test_the_stream_record_is_the_compact_utf8_json_of_the_event() -> None:
    record = normalise_event({"userId": "ü", "event": "E"}, route_type="track", facts=FACTS)
    assert json.loads(record.data.decode("utf-8")) == record.event
    assert b": " not in record.data and "ü".encode() in record.data


def test_the_partition_key_is_the_anonymous_id_first() -> None:
    assert partition_key({"anonymousId": "a1", "userId": "u1"}) == "a1"


def test_the_partition_key_is_the_user_id_without_an_anonymous_id() -> None:
    assert partition_key({"userId": "u1"}) == "u1"


def test_a_partition_key_over_256_characters_is_hashed_stably() -> None:
    key = partition_key({"userId": "u" * 300})
    assert len(key) == 64 and key == partition_key({"userId": "u" * 300})


def test_identify_traits_sent_only_in_the_context_are_also_set_as_traits() -> None:
    event = normalised(
        {"userId": "u", "context": {"traits": {"email": "a@example.com"}}}, route_type="identify"
    )
    assert event["traits"] == {"email": "a@example.com"}
    assert event["context"]["traits"] == {"email": "a@example.com"}


def test_identify_traits_at_the_root_win_over_the_context_ones() -> None:
    raw = {"userId": "u", "traits": {"plan": "pro"}, "context": {"traits": {"plan": "free"}}}
    assert normalised(raw, route_type="identify")["traits"] == {"plan": "pro"}
