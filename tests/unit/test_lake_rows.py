"""Segment events map to lake rows with the types and partition the Glue tables declare."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from cdp.lake import EVENT_COLUMNS, event_to_row, is_hidden, partition_of, row_to_event
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


IDENTIFY = {"messageId": "m2", "type": "identify", "userId": "42", "anonymousId": "a-1",
            "traits": {"email": "alice@example.com", "plan": "pro"}, "context": {"ip": "192.0.2.1"},
            "timestamp": "2026-11-20T10:00:00.250Z", "receivedAt": "2026-11-20T10:00:01.000Z", "sourceId": "src"}
TRACK = {"messageId": "m3", "type": "track", "event": "Order Completed", "anonymousId": "a-1",
         "properties": {"revenue": 10.5, "items": [{"sku": "x"}]}, "timestamp": "2026-11-20T10:00:00.000Z",
         "receivedAt": "2026-11-20T10:00:00.000Z"}
GROUP = {"messageId": "m4", "type": "group", "userId": "42", "groupId": "g-9", "traits": {"name": "Acme"},
         "timestamp": "2026-11-20T10:00:00.000Z", "receivedAt": "2026-11-20T10:00:00.000Z"}
ALIAS = {"messageId": "m5", "type": "alias", "userId": "42", "previousId": "a-1",
         "timestamp": "2026-11-20T10:00:00.000Z", "receivedAt": "2026-11-20T10:00:00.000Z"}
PAGE = {"messageId": "m6", "type": "page", "name": "Pricing", "anonymousId": "a-2",
        "timestamp": "2026-11-20T10:00:00.000Z", "receivedAt": "2026-11-20T10:00:00.000Z"}


@pytest.mark.parametrize("event", [IDENTIFY, TRACK, GROUP, ALIAS, PAGE], ids=lambda e: e["type"])
def test_a_row_reads_back_as_the_event_it_was_made_from(event: dict[str, object]) -> None:
    assert row_to_event(event_to_row(event)) == event


def test_derived_columns_and_the_partition_are_not_read_back_into_the_event() -> None:
    row = {**event_to_row(IDENTIFY), "dt": "2026-11-20"}
    assert "email" not in row_to_event(row) and "dt" not in row_to_event(row)


@pytest.mark.parametrize(
    ("path", "hidden"),
    [("/dt=2026-11-20/a.parquet", False), ("/dt=2026-11-20/_compacting-1.parquet", True),
     ("/dt=2026-11-20/.a.parquet", True), ("/_tmp/dt=2026-11-20/a.parquet", True)],
)
def test_files_under_a_name_starting_with_dot_or_underscore_are_work_in_progress(path: str, hidden: bool) -> None:
    assert is_hidden(path) is hidden
