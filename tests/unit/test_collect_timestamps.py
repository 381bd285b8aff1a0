"""Timestamps in every ISO-8601 form SDKs send, stored as UTC with milliseconds and Z."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdp.collect import InvalidTimestamp, format_timestamp, parse_timestamp


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:30:00Z", "2024-05-01T12:30:00.000Z"),
        ("2024-05-01T12:30:00.123456789Z", "2024-05-01T12:30:00.123Z"),
        ("2024-05-01T14:30:00+02:00", "2024-05-01T12:30:00.000Z"),
        ("2024-05-01T14:30:00+0200", "2024-05-01T12:30:00.000Z"),
        ("2024-05-01 12:30:00", "2024-05-01T12:30:00.000Z"),
        ("20240501T123000Z", "2024-05-01T12:30:00.000Z"),
        ("2024-05-01", "2024-05-01T00:00:00.000Z"),
        ("2024-05-01T12:30:00.5-00:30", "2024-05-01T13:00:00.500Z"),
    ],
)
def test_iso_forms_are_normalised_to_utc_milliseconds_z(text: str, expected: str) -> None:
    assert format_timestamp(parse_timestamp(text)) == expected


@pytest.mark.parametrize(
    "value", ["", "yesterday", "2024-13-01", 1714566600, None, "0001-01-01T00:00:00+01:00"]
)
def test_values_that_are_not_iso_dates_are_refused(value: object) -> None:
    with pytest.raises(InvalidTimestamp):
        parse_timestamp(value)


@settings(max_examples=50)
@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2999, 1, 1), timezones=st.just(UTC)))
def test_a_formatted_timestamp_parses_back_to_the_same_millisecond(moment: datetime) -> None:
    text = format_timestamp(moment)
    assert text.endswith("Z")
    assert format_timestamp(parse_timestamp(text)) == text
