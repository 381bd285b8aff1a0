"""The Parquet lake: layout, schema and the mapping between Segment events and rows.

This module is pure Python (no pyarrow) so the collector and unify can import the layout;
``cdp.lake.parquet`` holds the pyarrow side.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cdp.times import format_date, format_time, parse_time

EVENTS_PREFIX = "events"
IDENTITY_PREFIX = "identity"
PROFILES_PREFIX = "profiles"
QUARANTINE_PREFIX = "quarantine"

# Column name -> logical type; the Glue tables in template.yaml declare the same columns.
EVENT_COLUMNS: dict[str, str] = {
    "message_id": "string",
    "type": "string",
    "event": "string",
    "name": "string",
    "user_id": "string",
    "anonymous_id": "string",
    "group_id": "string",
    "previous_id": "string",
    "email": "string",
    "timestamp": "timestamp",
    "received_at": "timestamp",
    "source_id": "string",
    "properties": "json",
    "traits": "json",
    "context": "json",
}


def _email(event: dict[str, Any]) -> str | None:
    for holder in (event.get("traits"), (event.get("context") or {}).get("traits")):
        if isinstance(holder, dict) and isinstance(holder.get("email"), str) and holder["email"].strip():
            return holder["email"].strip().lower()
    return None


def _json(value: Any) -> str | None:
    if value is None or value == {}:
        return None
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def event_to_row(event: dict[str, Any]) -> dict[str, Any]:
    """One lake row for one (collector-normalised) Segment event."""
    timestamp = parse_time(event.get("timestamp")) or parse_time(event.get("receivedAt"))
    return {
        "message_id": _text(event.get("messageId")),
        "type": _text(event.get("type")),
        "event": _text(event.get("event")),
        "name": _text(event.get("name")),
        "user_id": _text(event.get("userId")),
        "anonymous_id": _text(event.get("anonymousId")),
        "group_id": _text(event.get("groupId")),
        "previous_id": _text(event.get("previousId")),
        "email": _email(event),
        "timestamp": timestamp,
        "received_at": parse_time(event.get("receivedAt")) or timestamp,
        "source_id": _text(event.get("sourceId")),
        "properties": _json(event.get("properties")),
        "traits": _json(event.get("traits")),
        "context": _json(event.get("context")),
    }


# Row columns named differently in the event; columns absent here keep their name.
_EVENT_KEYS = {
    "message_id": "messageId",
    "user_id": "userId",
    "anonymous_id": "anonymousId",
    "group_id": "groupId",
    "previous_id": "previousId",
    "received_at": "receivedAt",
    "source_id": "sourceId",
}
_JSON_COLUMNS = ("properties", "traits", "context")
# Derived from the event (email from its traits, dt from its time): not part of it.
_DERIVED_COLUMNS = ("email", "dt")


def row_to_event(row: Mapping[str, Any]) -> dict[str, Any]:
    """The Segment event a lake row was made from by :func:`event_to_row` (empty fields left out)."""
    event: dict[str, Any] = {}
    for column, value in row.items():
        if value is None or column in _DERIVED_COLUMNS:
            continue
        if isinstance(value, datetime):
            value = format_time(value)
        elif column in _JSON_COLUMNS and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                value = {}
        event[_EVENT_KEYS.get(column, column)] = value
    return event


def is_hidden(relative_path: str) -> bool:
    """Work in progress (e.g. a compaction's output before it is published): a name on the path
    starts with ``_`` or ``.``. Readers skip these, as Hive, Athena and DuckDB's dataset readers do."""
    return any(part.startswith((".", "_")) for part in relative_path.split("/") if part)


def partition_of(row: dict[str, Any]) -> str:
    """The ``dt`` partition (UTC date of the event time) a row belongs to."""
    ts = row["timestamp"] or datetime.now(UTC)
    return format_date(ts)
