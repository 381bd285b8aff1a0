"""Segment events map to lake rows with the types and partition the Glue tables declare."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from cdp.lake import EVENT_COLUMNS, event_to_row, partition_of
from cdp.times import parse_time


def test_a_track_event_becomes_a_row_with_json_properties_and_a_utc_timestamp() -> None:
    event = {"messageId": "m1", "type": "track", "event": "Order Completed", "userId": "42",
             "properties": {"revenue": 10.5}, "timestamp": "2026-11-20T23:30:00.000Z",
             "receivedAt": "2026-11-20T23:30:01.000Z", "sourceId": "src"}
    row = event_to_row(event)
    assert row["message_id"] == "m1" and row["event"] == "Order Completed"
    assert row["timestamp"] == datetime(2026, 11, 20, 23, 30, tzinfo=UTC)
    assert json.loads(row["properties"]) == {"revenue": 10.5}
    assert set(row) == set(EVENT_COLUMNS)


def test_the_partition_is_the_utc_date_of_the_event_time() -> None:
    row = event_to_row({"messageId": "m", "type": "page", "anonymousId": "a",
                        "timestamp": "2026-11-20T23:30:00-02:00"})
    assert partition_of(row) == "2026-11-21"


def test_email_comes_from_traits_or_context_traits_lowercased() -> None:
    assert event_to_row({"type": "identify", "traits": {"email": " Alice@Example.COM "}})["email"] == \
        "alice@example.com"
    assert event_to_row({"type": "track", "context": {"traits": {"email": "b@x.io"}}})["email"] == "b@x.io"


def test_a_missing_event_time_falls_back_to_the_received_time() -> None:
    row = event_to_row({"type": "track", "receivedAt": "2026-01-02T03:04:05.000Z"})
    assert row["timestamp"] == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_unparseable_times_are_none_not_errors() -> None:
    assert parse_time("yesterday") is None
    assert parse_time(12) is None
