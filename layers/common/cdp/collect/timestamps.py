"""ISO-8601 timestamps as SDKs send them, normalised to UTC with milliseconds and ``Z``."""

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
        raise InvalidTimestamp(value) from exc
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00:00+01:00
        raise InvalidTimestamp(value) from exc


def format_timestamp(moment: datetime) -> str:
    """``2024-05-01T12:30:00.123Z``: UTC, milliseconds, ``Z``."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="milliseconds") + "Z"
