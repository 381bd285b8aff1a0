"""What an event may hold, set by where it is stored: DynamoDB keys, the profile item, the lake.

Browser write keys are public, so anything can arrive. Each limit here refuses one event with a
stable reason code (the rest of its batch goes on); none of them may end in a 5xx.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cdp.errors import InvalidEvent

#: Bytes (UTF-8) of one identifier value: userId, anonymousId, groupId, previousId, messageId,
#: and every identifier path of the identity config (traits.email, traits.phone, custom ones).
#: The identity index's partition key is ``<type>:<value>``, at most 2048 bytes in DynamoDB.
MAX_IDENTIFIER_BYTES = 1024
#: Bytes of a trait or property name (a key of traits, context.traits or properties).
MAX_KEY_BYTES = 256
#: Objects and arrays inside one another, the event itself being the first level.
MAX_DEPTH = 32
#: Bytes of one trait's value as JSON: traits of many events share one 400 KB profile item.
MAX_TRAIT_VALUE_BYTES = 8 * 1024
#: Bytes of a track's ``event`` or a page's or screen's ``name``.
MAX_NAME_BYTES = 1024
#: Integers must fit a signed 64-bit column (Parquet INT64, Athena BIGINT).
MIN_INT = -(2**63)
MAX_INT = 2**63 - 1

#: Paths where the identity config's built-in types are read from.
BUILTIN_IDENTIFIER_PATHS = ("traits.email", "context.traits.email", "traits.phone", "context.traits.phone")

#: The first day the lake's tables project (``projection.dt.range`` in template.yaml).
LAKE_EPOCH = datetime(2015, 1, 1, tzinfo=UTC)

# A string this short cannot exceed the byte limits (UTF-8 takes at most 4 bytes per character).
_SHORT_KEY = MAX_KEY_BYTES // 4
_SHORT_IDENTIFIER = MAX_IDENTIFIER_BYTES // 4


@dataclass(frozen=True, slots=True)
class EventLimits:
    """The settings of the checks: how far ahead of receivedAt an event time may be, and where
    the identity config reads identifiers (a function, so the collector loads that config only
    for an event over 1 KB, the least that can hold an over-long identifier)."""

    max_future: timedelta = timedelta(minutes=5)
    earliest: datetime = LAKE_EPOCH
    identifier_paths: Callable[[], Iterable[str]] | None = None


DEFAULT_LIMITS = EventLimits()


class AmbiguousObject(dict[str, Any]):
    """A JSON object that named one key twice: the last value is what the dict holds, ``pairs``
    everything that was sent (for the quarantine)."""

    pairs: list[tuple[str, Any]]


_ambiguous_seen = 0


def object_from_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` of the body parser: a duplicate key is marked, not fatal, so only
    the event that holds it is refused."""
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    global _ambiguous_seen
    _ambiguous_seen += 1
    ambiguous = AmbiguousObject(obj)
    ambiguous.pairs = pairs
    return ambiguous


def ambiguous_seen() -> int:
    """How many objects with a duplicate key the parser has met: unchanged across one parse
    means that body holds none (another thread's parse can only make it change, never hide one)."""
    return _ambiguous_seen


_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_INT64_DIGITS = b"0" * 19


def may_break_limits(data: bytes) -> bool:
    """False when an event's stored JSON shows :func:`check_values` would pass it, given that its
    body held no duplicate key: no more brackets than levels allowed, no run of 19 digits (every
    integer of 18 digits fits 64 bits). A bracket or digits inside a string only cost a walk."""
    return (
        data.count(b"{") + data.count(b"[") > MAX_DEPTH
        or data.translate(_DIGITS_AS_ZERO).find(_INT64_DIGITS) >= 0
    )


def check_values(event: dict[str, Any]) -> None:
    """Refuse ``event`` if an object in it repeats a key, if it nests deeper than
    :data:`MAX_DEPTH`, or if an integer does not fit 64 bits. Non-finite floats are left to the
    serialiser (``allow_nan=False``), which meets every value anyway."""
    _check_items(event.values(), 1)


def _check_items(values: Iterable[Any], depth: int) -> None:
    for value in values:
        kind = type(value)
        if kind is str:
            continue
        if kind is dict:
            if depth >= MAX_DEPTH:
                raise InvalidEvent("too_deep", limit=MAX_DEPTH)
            _check_items(value.values(), depth + 1)
        elif kind is list:
            if depth >= MAX_DEPTH:
                raise InvalidEvent("too_deep", limit=MAX_DEPTH)
            _check_items(value, depth + 1)
        elif kind is int:
            if not MIN_INT <= value <= MAX_INT:
                raise InvalidEvent("invalid_number")
        elif kind is AmbiguousObject:
            raise InvalidEvent("duplicate_key")


def check_identifier(value: str) -> None:
    if len(value) > _SHORT_IDENTIFIER and len(value.encode("utf-8", "surrogatepass")) > MAX_IDENTIFIER_BYTES:
        raise InvalidEvent("identifier_too_long", limit_bytes=MAX_IDENTIFIER_BYTES)


def check_identifier_paths(event: dict[str, Any], paths: Iterable[str]) -> None:
    """Identifiers read from inside the event (``traits.email``...), as the identity config reads them.

    A group's ``traits`` describe the group, so they are not read for identity there.
    """
    is_group = event.get("type") == "group"
    for dotted in paths:
        if is_group and dotted.startswith("traits."):
            continue
        node: Any = event
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, str):
            check_identifier(node.strip())


def check_names(holder: dict[str, Any]) -> None:
    """The keys of ``traits``, ``context.traits`` or ``properties``: trait and property names."""
    if holder and max(map(len, holder)) > _SHORT_KEY:
        for key in holder:
            if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
                raise InvalidEvent("key_too_long", limit_bytes=MAX_KEY_BYTES)


def check_traits(traits: dict[str, Any]) -> None:
    check_names(traits)
    for value in traits.values():
        if isinstance(value, str):
            size = len(value) if len(value) * 4 <= MAX_TRAIT_VALUE_BYTES else len(value.encode("utf-8", "surrogatepass"))
        elif isinstance(value, dict | list):
            size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass"))
        else:
            continue
        if size > MAX_TRAIT_VALUE_BYTES:
            raise InvalidEvent("trait_value_too_large", limit_bytes=MAX_TRAIT_VALUE_BYTES)


def check_name(value: str) -> None:
    if len(value) * 4 > MAX_NAME_BYTES and len(value.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise InvalidEvent("event_name_too_long", limit_bytes=MAX_NAME_BYTES)
    if not value.isprintable() and any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in value):
        raise InvalidEvent("invalid_event_name")


def as_sent(value: Any) -> str:
    """JSON text of ``value`` with every key its objects were sent with, duplicates included."""
    try:
        return _as_sent(value)
    except RecursionError:
        return json.dumps(value)


def _as_sent(value: Any) -> str:
    if isinstance(value, dict):
        pairs = value.pairs if type(value) is AmbiguousObject else value.items()
        return "{" + ",".join(f"{json.dumps(k)}:{_as_sent(v)}" for k, v in pairs) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_as_sent(v) for v in value) + "]"
    return json.dumps(value)


def writable(value: Any) -> Any:
    """``value`` if it can be stored as JSON text, else its JSON text with the offending characters
    escaped (a lone surrogate as ``\\ud800``, NaN as a word), so the quarantine keeps the bad event."""
    try:
        json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (UnicodeEncodeError, ValueError):
        return json.dumps(value)
    return value
