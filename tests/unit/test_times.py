"""Times in every ISO-8601 form SDKs send, stored as UTC with milliseconds and Z."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdp.times import InvalidTimestamp, as_utc, format_date, format_time, parse_time, parse_timestamp


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
    assert format_time(parse_timestamp(text)) == expected


@pytest.mark.parametrize(
    "value", ["", "yesterday", "2024-13-01", 1714566600, None, "0001-01-01T00:00:00+01:00"]
)
def test_values_that_are_not_iso_dates_are_refused(value: object) -> None:
    with pytest.raises(InvalidTimestamp):
        parse_timestamp(value)


@settings(max_examples=50)
@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2999, 1, 1), timezones=st.just(UTC)))
def test_a_formatted_timestamp_parses_back_to_the_same_millisecond(moment: datetime) -> None:
    text = format_time(moment)
    assert text.endswith("Z")
    assert format_time(parse_timestamp(text)) == text


def test_a_lower_case_z_is_read_as_utc() -> None:
    assert format_time(parse_timestamp("2024-05-01T12:30:00.25z")) == "2024-05-01T12:30:00.250Z"


@pytest.mark.parametrize("value", ["", "yesterday", None, 12, "0001-01-01T00:00:00+01:00"])
def test_stored_values_that_are_not_times_read_as_none(value: object) -> None:
    assert parse_time(value) is None


def test_a_naive_time_is_taken_as_utc_and_an_offset_is_converted() -> None:
    assert as_utc(datetime(2024, 5, 1, 12)) == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert as_utc(parse_timestamp("2024-05-01T23:30:00-01:00")).isoformat() == "2024-05-02T00:30:00+00:00"


def test_the_date_of_a_moment_is_its_utc_date() -> None:
    assert format_date(parse_timestamp("2024-05-01T23:30:00-01:00")) == "2024-05-02"


def test_formatted_times_have_one_width_so_they_sort_as_text() -> None:
    early, late = datetime(999, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, 0, 0, 0, 999999, tzinfo=UTC)
    assert format_time(early) == "0999-01-01T00:00:00.000Z"
    assert len(format_time(early)) == len(format_time(late)) and format_time(early) < format_time(late)
