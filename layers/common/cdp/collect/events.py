"""Validation and enrichment of one Segment-spec event, as the collector stores it."""

from __future__ import annotations

import functools
import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cdp.errors import InvalidEvent
from cdp.times import InvalidTimestamp, format_time, parse_timestamp

from .body import MAX_EVENT_BYTES
from .limits import (
    BUILTIN_IDENTIFIER_PATHS,
    DEFAULT_LIMITS,
    MAX_IDENTIFIER_BYTES,
    AmbiguousObject,
    EventLimits,
    check_identifier,
    check_identifier_paths,
    check_name,
    check_names,
    check_traits,
    check_values,
    may_break_limits,
)

EVENT_TYPES = frozenset({"identify", "track", "page", "screen", "group", "alias"})

#: Room for the fields the collector adds (receivedAt, sourceId, context.ip, userAgent...),
#: so an event the sender kept within 32 KB is never refused for our own additions.
ENRICHMENT_ALLOWANCE = 1024
MAX_STORED_EVENT_BYTES = MAX_EVENT_BYTES + ENRICHMENT_ALLOWANCE

#: Kinesis partition keys are at most 256 Unicode characters.
MAX_PARTITION_KEY_CHARS = 256

_OBJECT_FIELDS = ("properties", "traits", "context", "integrations")


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What the request tells about all of its events."""

    source_id: str
    received_at: datetime
    ip: str | None = None
    user_agent: str | None = None
    sent_at: object = None
    context: Mapping[str, Any] | None = None
    limits: EventLimits = DEFAULT_LIMITS
    #: False when the parser met no object with a duplicate key in the request's body.
    may_hold_duplicate_keys: bool = True
    #: The stack's minimisation options (``cdp.privacy.minimise.Minimiser``); None keeps everything.
    minimise: Any = None


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    """One accepted event, serialised once: what goes to the stream."""

    event: dict[str, Any]
    data: bytes
    partition_key: str


def normalise_event(raw: object, *, route_type: str | None, facts: RequestFacts) -> OutgoingRecord:
    """The stored form of ``raw``, or :class:`InvalidEvent` whose reason is a stable code.

    ``route_type`` is the type the route implies (``/v1/track`` → ``track``); None for batches,
    whose events carry their own ``type``.
    """
    if not isinstance(raw, dict):
        raise InvalidEvent("not_an_object")
    try:
        return _normalise(raw, route_type, facts)
    except UnicodeEncodeError as exc:  # a lone surrogate ("\\ud800") cannot be stored as UTF-8
        raise InvalidEvent("invalid_unicode") from exc


def _normalise(raw: dict[str, Any], route_type: str | None, facts: RequestFacts) -> OutgoingRecord:
    if type(raw) is not dict:
        raise InvalidEvent("duplicate_key")
    event: dict[str, Any] = dict(raw)
    event.pop("writeKey", None)
    event["type"] = route_type or _event_type(raw.get("type"))
    user_id = _identifier(raw.get("userId"), "invalid_user_id")
    anonymous_id = _identifier(raw.get("anonymousId"), "invalid_anonymous_id")
    if user_id is None and anonymous_id is None:
        raise InvalidEvent("missing_identity")
    _set_or_drop(event, "userId", user_id)
    _set_or_drop(event, "anonymousId", anonymous_id)
    _check_type_fields(event)
    for name in _OBJECT_FIELDS:
        value = raw.get(name)
        if value is None:
            event.pop(name, None)
        elif not isinstance(value, dict):
            raise InvalidEvent(f"invalid_{name}")
    _set_timestamps(event, raw, facts)
    event["messageId"] = _message_id(raw, facts.source_id)
    event["context"] = _context(event.get("context"), facts)
    if (
        event["type"] == "identify"
        and "traits" not in event
        and isinstance(event["context"].get("traits"), dict)
    ):
        # RudderStack's SDKs send identify traits in context.traits only; downstream reads traits.
        event["traits"] = dict(event["context"]["traits"])
    if facts.minimise is not None:
        facts.minimise.event(event)
    event["sourceId"] = facts.source_id
    try:
        text = json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError as exc:  # NaN, Infinity, or a literal beyond a double such as 1e400
        raise InvalidEvent("invalid_number") from exc
    data = text.encode("utf-8")
    if facts.may_hold_duplicate_keys or may_break_limits(data):
        check_values(event)
    for holder in (event.get("traits"), event["context"].get("traits")):
        if isinstance(holder, dict):
            check_traits(holder)
    if isinstance(event.get("properties"), dict):
        check_names(event["properties"])
    if len(data) > MAX_IDENTIFIER_BYTES:  # only then can an identifier inside be too long
        _check_identifier_paths(event, facts.limits)
    if len(data) > MAX_STORED_EVENT_BYTES:
        raise InvalidEvent("event_too_large", limit="32 KB per event", limit_bytes=MAX_EVENT_BYTES)
    return OutgoingRecord(event=event, data=data, partition_key=partition_key(event))


def _check_identifier_paths(event: dict[str, Any], limits: EventLimits) -> None:
    check_identifier_paths(event, BUILTIN_IDENTIFIER_PATHS)
    if limits.identifier_paths is not None:
        check_identifier_paths(event, limits.identifier_paths())


def partition_key(event: Mapping[str, Any]) -> str:
    """A stable id of the sender (anonymousId, else userId), so its events stay in order."""
    key = str(event.get("anonymousId") or event.get("userId") or event.get("messageId") or "-")
    if len(key) > MAX_PARTITION_KEY_CHARS:
        key = hashlib.sha256(key.encode("utf-8")).hexdigest()
    return key


def _event_type(value: object) -> str:
    if value is None or value == "":
        raise InvalidEvent("missing_type")
    if not isinstance(value, str) or value.lower() not in EVENT_TYPES:
        raise InvalidEvent("invalid_type")
    return value.lower()


def _identifier(value: object, reason: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        check_identifier(value)
        return value if value.strip() else None
    if isinstance(value, bool):
        raise InvalidEvent(reason)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    raise InvalidEvent(reason)


def _set_or_drop(event: dict[str, Any], name: str, value: str | None) -> None:
    if value is None:
        event.pop(name, None)
    else:
        event[name] = value


def _check_type_fields(event: dict[str, Any]) -> None:
    kind = event["type"]
    if kind == "track":
        name = event.get("event")
        if name is None or name == "":
            raise InvalidEvent("missing_event")
        if not isinstance(name, str):
            raise InvalidEvent("invalid_event_name")
        check_name(name)
    elif kind in ("page", "screen") and isinstance(event.get("name"), str):
        check_name(event["name"])
    elif kind == "group":
        group_id = _identifier(event.get("groupId"), "invalid_group_id")
        if group_id is None:
            raise InvalidEvent("missing_group_id")
        event["groupId"] = group_id
    elif kind == "alias":
        previous_id = _identifier(event.get("previousId"), "invalid_previous_id")
        if previous_id is None:
            raise InvalidEvent("missing_previous_id")
        event["previousId"] = previous_id


def _timestamp(value: object) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        return parse_timestamp(value)
    except InvalidTimestamp as exc:
        raise InvalidEvent("invalid_timestamp") from exc


def _set_timestamps(event: dict[str, Any], raw: Mapping[str, Any], facts: RequestFacts) -> None:
    """``timestamp = receivedAt − (sentAt − originalTimestamp)`` corrects the sender's clock."""
    client_timestamp = _timestamp(raw.get("timestamp"))
    original = _timestamp(raw.get("originalTimestamp")) or client_timestamp
    sent_at = _timestamp(raw.get("sentAt") if raw.get("sentAt") is not None else facts.sent_at)
    received_at = facts.received_at
    if sent_at is not None and original is not None:
        try:
            timestamp = received_at - (sent_at - original)
        except OverflowError as exc:
            raise InvalidEvent("invalid_timestamp") from exc
    else:
        timestamp = client_timestamp or original or received_at
    limits = facts.limits
    if timestamp - received_at > limits.max_future or timestamp < limits.earliest:
        # A time the lake cannot show, or a forged future one: when we received it is the best
        # we know. The sender's own time stays in originalTimestamp.
        timestamp = received_at
    received_text = _received_text(received_at)
    event["timestamp"] = received_text if timestamp == received_at else format_time(timestamp)
    event["receivedAt"] = received_text
    _set_or_drop(event, "originalTimestamp", format_time(original) if original else None)
    _set_or_drop(event, "sentAt", format_time(sent_at) if sent_at else None)


#: Every event of a request has the same receivedAt (and many have it as their timestamp).
_received_text = functools.lru_cache(maxsize=8)(format_time)


def _message_id(raw: Mapping[str, Any], source_id: str) -> str:
    value = raw.get("messageId")
    if isinstance(value, str) and value.strip():
        check_identifier(value)
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if value is not None and value != "":
        raise InvalidEvent("invalid_message_id")
    if raw.get("timestamp") or raw.get("originalTimestamp"):
        # Same content at the same client time is the same event: a retried request keeps its id,
        # so downstream deduplication by messageId still works.
        canonical = json.dumps(
            {k: v for k, v in raw.items() if k not in ("writeKey", "sentAt")},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        digest = hashlib.sha256(f"{source_id}\n{canonical}".encode()).hexdigest()
        return f"cdp-{digest[:32]}"
    return str(uuid.uuid4())


def _context(value: object, facts: RequestFacts) -> dict[str, Any]:
    if type(value) is AmbiguousObject or type(facts.context) is AmbiguousObject:
        raise InvalidEvent("duplicate_key")
    context: dict[str, Any] = dict(facts.context) if facts.context else {}
    if isinstance(value, dict):
        context.update(value)
    if facts.ip and not context.get("ip"):
        context["ip"] = facts.ip
    if facts.user_agent and not context.get("userAgent"):
        context["userAgent"] = facts.user_agent
    return context
