"""The Parquet lake: layout, schema and the mapping from Segment events to rows.

This module is pure Python (no pyarrow) so the collector and unify can import the layout;
``cdp.lake.parquet`` holds the pyarrow side.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from cdp.times import format_date, parse_time

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


def partition_of(row: dict[str, Any]) -> str:
    """The ``dt`` partition (UTC date of the event time) a row belongs to."""
    ts = row["timestamp"] or datetime.now(UTC)
    return format_date(ts)
