"""Time, one way everywhere: parse any ISO-8601 form SDKs send, write UTC with milliseconds and ``Z``.

Every stored or sent time is ``format_time`` output (``2024-05-01T12:30:00.123Z``): fixed width,
so stamps compare as strings. ``parse_timestamp`` is the collector's per-event path and stays a
single ``fromisoformat`` call for the forms SDKs send.
"""

from __future__ import annotations

from datetime import UTC, datetime


class InvalidTimestamp(ValueError):
    """The value is not an ISO-8601 date or date-time."""


def parse_timestamp(value: object) -> datetime:
    """Parse any ISO-8601 form SDKs send (``Z`` or offsets, 0–9 fraction digits, date only).

    A value without an offset is taken as UTC. The result is always timezone-aware UTC.
    """
    if not isinstance(value, str) or not value or len(value) > 64:
        raise InvalidTimestamp(repr(value)[:80])
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        # RFC 3339 allows a lower-case ``z``; fromisoformat does not. Off the fast path.
        text = value.strip()
        if not text.endswith("z"):
            raise InvalidTimestamp(value) from exc
        try:
            parsed = datetime.fromisoformat(text[:-1] + "Z")
        except ValueError:
            raise InvalidTimestamp(value) from exc
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00:00+01:00
        raise InvalidTimestamp(value) from exc


def parse_time(value: object) -> datetime | None:
    """``parse_timestamp``, or None for anything that is not an ISO-8601 time (stored data)."""
    try:
        return parse_timestamp(value)
    except InvalidTimestamp:
        return None


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def format_time(moment: datetime) -> str:
    """``2024-05-01T12:30:00.123Z``: UTC, milliseconds, ``Z`` (a naive datetime is taken as UTC)."""
    if moment.tzinfo is not None and moment.utcoffset():
        moment = moment.astimezone(UTC)
    # The first 23 characters are YYYY-MM-DDTHH:MM:SS.mmm whatever the offset suffix (per event on
    # the collector's hot path: no astimezone/replace when the time is already UTC).
    return moment.isoformat(timespec="milliseconds")[:23] + "Z"


def format_date(moment: datetime) -> str:
    """``2024-05-01``: the UTC date of ``moment`` (lake partitions)."""
    return as_utc(moment).date().isoformat()
