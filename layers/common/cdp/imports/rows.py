"""One row of an import file -> one Segment-spec event, before the collector's own validation.

The event is then validated and normalised by :func:`cdp.collect.events.normalise_event`, exactly
as an event sent to the tracking API; this module only places the row's values.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Mapping
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from cdp.errors import InvalidEvent
from cdp.identity.config import IdentityConfig

from .mapping import Column, ImportMapping

_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})


def message_id(mapping: ImportMapping, *, source_id: str, file_id: str, row_number: int,
               row: Mapping[str, Any]) -> str:
    """A stable id: the same row of the same file (or, with ``message_id`` columns, the same key in any
    file) always gets the same id, so importing a file again changes nothing downstream."""
    if mapping.message_id:
        key: Any = [json_value(row.get(c)) for c in mapping.message_id]
        material = f"{source_id}\n{json.dumps(key, ensure_ascii=False)}"
    else:
        content = json.dumps({k: json_value(v) for k, v in row.items()}, sort_keys=True, ensure_ascii=False)
        material = f"{source_id}\n{file_id}\n{row_number}\n{content}"
    return "imp-" + hashlib.sha256(material.encode("utf-8")).hexdigest()[:32]


def row_to_event(row: Mapping[str, Any], *, mapping: ImportMapping, identity: IdentityConfig,
                 source_id: str, file_id: str, row_number: int) -> dict[str, Any]:
    """The raw event of ``row`` (with its stable ``messageId``); a value that does not convert raises
    :class:`InvalidEvent` (``invalid_number``, ``invalid_integer``, ``invalid_boolean``)."""
    event: dict[str, Any] = {
        "type": mapping.type,
        "messageId": message_id(mapping, source_id=source_id, file_id=file_id, row_number=row_number, row=row),
        "context": {"import": {"source": source_id, "file": file_id, "row": row_number}},
    }
    traits: dict[str, Any] = {}
    for type_name, column in mapping.identifiers:
        value = _value(row, column)
        if value is not None:
            _place(event, _identifier_path(identity, type_name, mapping.type), value)
    for name, column in mapping.traits:
        value = _value(row, column)
        if value is not None:
            traits[name] = value
    if traits:
        holder = event if mapping.type == "identify" else event["context"]
        holder.setdefault("traits", {}).update(traits)
    if mapping.timestamp is not None:
        stamp = _value(row, mapping.timestamp)
        if stamp is not None:
            event["timestamp"] = stamp
    if mapping.type == "track":
        event["event"] = _value(row, mapping.event) if isinstance(mapping.event, Column) else mapping.event
        properties = {name: v for name, column in mapping.properties if (v := _value(row, column)) is not None}
        if properties:
            event["properties"] = properties
    if "userId" not in event and "anonymousId" not in event:
        # The collector needs a userId or an anonymousId. A CRM row often has neither (only an email):
        # it gets an anonymousId derived from its first identifier, the same on every import.
        primary = primary_identifier(row, mapping=mapping, identity=identity)
        if primary is not None:
            digest = hashlib.sha256(f"{source_id}\n{primary}".encode()).hexdigest()[:24]
            event["anonymousId"] = f"import-{digest}"
    return event


def primary_identifier(row: Mapping[str, Any], *, mapping: ImportMapping, identity: IdentityConfig) -> str | None:
    """``type:value`` of the row's highest-priority identifier (None when it has none)."""
    present = []
    for type_name, column in mapping.identifiers:
        try:
            value = _value(row, column)
        except InvalidEvent:
            continue
        if value is not None and str(value).strip():
            present.append((identity.rank.get(type_name, len(identity.rank)), type_name, str(value).strip()))
    if not present:
        return None
    _, type_name, value = min(present)
    return f"{type_name}:{value.lower() if type_name == 'email' else value}"


def _identifier_path(identity: IdentityConfig, type_name: str, row_type: str) -> str:
    """Where events carry the type: an identify's traits, a track's context (as the SDKs send them)."""
    paths = identity.spec_by_type[type_name].paths
    preferred = "traits." if row_type == "identify" else "context."
    return next((p for p in paths if p.startswith(preferred)), paths[0])


def _place(event: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    target = event
    for part in parents:
        child = target.get(part)
        if not isinstance(child, dict):
            child = target[part] = {}
        target = child
    target[last] = str(value) if last in ("userId", "anonymousId") or parents else value


def _value(row: Mapping[str, Any], column: Column) -> Any:
    """The column's value converted to the column's type; None when absent or empty."""
    value = json_value(row.get(column.name))
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    kind = column.type
    if kind == "string":
        return value if isinstance(value, str) else (json.dumps(value) if isinstance(value, dict | list)
                                                     else str(value))
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise InvalidEvent("invalid_boolean", column=column.name)
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise InvalidEvent(f"invalid_{kind}", column=column.name)
    if kind == "integer":
        if not number.is_integer():
            raise InvalidEvent("invalid_integer", column=column.name)
        return int(number)
    return int(number) if number.is_integer() and abs(number) < 2**53 else number


def json_value(value: Any) -> Any:
    """A value read from a file (CSV strings, Parquet/JSON types) as JSON can carry it."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return str(value)
