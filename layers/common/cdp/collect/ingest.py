"""The collector's use case: authenticate, read, validate, quarantine the rejects, stream the rest."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from cdp.errors import EventsRejected, InvalidEvent, MalformedRequest, PayloadTooLarge, WriteKeyRejected
from cdp.privacy.suppression import SuppressionList, is_suppressed
from cdp.times import format_time

from .body import MAX_REQUEST_BYTES, decode_body, write_key_from_authorization
from .events import OutgoingRecord, RequestFacts, normalise_event
from .limits import DEFAULT_LIMITS, AmbiguousObject, EventLimits, ambiguous_seen, as_sent, writable

if TYPE_CHECKING:
    from cdp.privacy.minimise import Minimiser

#: Routes of the tracking API, by the last segment of their path. ``pixel`` carries one event
#: of any type (``track`` when it names none) in the ``data`` query parameter.
ROUTES = ("batch", "identify", "track", "page", "screen", "group", "alias", "pixel")


@dataclass(frozen=True, slots=True)
class Source:
    """A sender of events, known by its write key (stored hashed)."""

    source_id: str
    name: str
    enabled: bool = True
    created_at: str = ""


@dataclass(frozen=True, slots=True)
class IngestRequest:
    route: str
    body: bytes
    authorization: str | None = None
    content_encoding: str | None = None
    ip: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class IngestResult:
    accepted: int
    rejected: tuple[Rejection, ...] = ()
    message_ids: tuple[str, ...] = field(default=(), repr=False)
    quarantined: int = 0  # entries written to the quarantine (rejected events)
    suppressed: int = 0  # events about a suppressed person: dropped, counted, never stored


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    """A rejected event (``payload``) or an unreadable body (``raw_body``) of a known source."""

    reason: str
    source_id: str
    received_at: str
    route: str
    index: int | None = None
    payload: Any = None
    raw_body: bytes | None = None
    content_encoding: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    #: The batch's own ``sentAt`` and ``context``, which the event inherits on replay. Each of
    #: ``payload``, ``sent_at`` and ``context`` is kept as its JSON text (a string) when it holds
    #: what JSON on disk cannot (a lone surrogate, NaN).
    sent_at: Any = None
    context: dict[str, Any] | str | None = None


class SourceStore(Protocol):
    def authenticate(self, write_key: str) -> Source | None: ...


class EventSink(Protocol):
    def put(self, records: Sequence[OutgoingRecord]) -> None:
        """Write every record or raise :class:`cdp.errors.StreamUnavailable`."""


class Quarantine(Protocol):
    def put(self, entries: Sequence[QuarantineEntry]) -> None: ...


def ingest(
    request: IngestRequest,
    *,
    sources: SourceStore,
    sink: EventSink,
    quarantine: Quarantine,
    now: datetime,
    max_request_bytes: int = MAX_REQUEST_BYTES,
    limits: EventLimits = DEFAULT_LIMITS,
    minimise: Minimiser | None = None,
    suppression: SuppressionList | None = None,
) -> IngestResult:
    """Accept the valid events of ``request`` into ``sink``; quarantine what a known source sent wrong.

    ``minimise`` (the stack's options: IP address, dropped traits) applies to what is streamed
    and to what is quarantined. Raises :class:`WriteKeyRejected` (nothing stored), :class:`MalformedRequest` or
    :class:`PayloadTooLarge` (body quarantined when the source is known), :class:`EventsRejected`
    when no event passed (all quarantined), or :class:`cdp.errors.StreamUnavailable`.
    """
    if request.route not in ROUTES:
        raise MalformedRequest("unknown_route")
    # What the quarantine keeps of the request (the events' own context.ip is minimised per event).
    kept = request
    if minimise is not None and minimise.active:
        kept = replace(request, ip=minimise.ip(request.ip))
    else:
        minimise = None
    received_at = format_time(now)
    header_key = write_key_from_authorization(request.authorization)
    source = _authenticate(sources, header_key) if header_key else None
    payload: object = None
    body_key: str | None = None
    try:
        ambiguous_before = ambiguous_seen()
        payload = _read(request, max_request_bytes)
        if source is None:
            body_key = _body_write_key(payload)
            source = _authenticate(sources, body_key)
        events, facts = _unpack(request, payload, source, now, limits)
        facts = replace(facts, may_hold_duplicate_keys=ambiguous_seen() != ambiguous_before, minimise=minimise)
    except (MalformedRequest, PayloadTooLarge) as exc:
        if source is not None:
            quarantine.put([_raw_entry(kept, source, received_at, exc.reason,
                                       secrets=[k for k in (header_key, body_key) if k], parsed=payload)])
            exc.details["quarantined"] = 1  # what was kept, for the request's metrics
        raise
    records: list[OutgoingRecord] = []
    rejections: list[Rejection] = []
    entries: list[QuarantineEntry] = []
    route_type = None if request.route in ("batch", "pixel") else request.route
    suppressed = 0
    for index, raw in enumerate(events):
        if isinstance(raw, dict) and is_suppressed(raw, suppression):
            suppressed += 1  # a privacy request: neither the stream nor the quarantine keeps it
            continue
        try:
            records.append(normalise_event(raw, route_type=route_type, facts=facts))
        except InvalidEvent as exc:
            rejections.append(Rejection(index, exc.reason))
            entries.append(_event_entry(kept, facts, received_at, index, exc.reason, raw))
    if entries:
        # Quarantine first: if it fails, nothing reached the stream and the sender retries all.
        quarantine.put(entries)
    if records:
        sink.put(records)
    elif rejections and not suppressed:
        raise EventsRejected("all_events_rejected", rejected=[r.to_dict() for r in rejections],
                             quarantined=len(entries))
    return IngestResult(
        accepted=len(records),
        rejected=tuple(rejections),
        message_ids=tuple(r.event["messageId"] for r in records),
        quarantined=len(entries),
        suppressed=suppressed,
    )


def _authenticate(sources: SourceStore, write_key: str | None) -> Source:
    if not write_key:
        raise WriteKeyRejected("missing_write_key")
    if not write_key.isascii():  # write keys are ASCII; a lone surrogate could not even be hashed
        raise WriteKeyRejected("unknown_write_key")
    source = sources.authenticate(write_key)
    if source is None:
        raise WriteKeyRejected("unknown_write_key")
    return source


def _read(request: IngestRequest, max_request_bytes: int) -> object:
    if len(request.body) > max_request_bytes:
        raise PayloadTooLarge("request_too_large", limit="500 KB per request", limit_bytes=max_request_bytes)
    return decode_body(request.body, request.content_encoding, limit=max_request_bytes)


def _body_write_key(payload: object) -> str | None:
    if not isinstance(payload, dict):
        raise MalformedRequest("not_an_object")
    key = payload.get("writeKey")
    return key if isinstance(key, str) else None


def _unpack(
    request: IngestRequest, payload: object, source: Source, now: datetime, limits: EventLimits = DEFAULT_LIMITS
) -> tuple[list[Any], RequestFacts]:
    if not isinstance(payload, dict):
        raise MalformedRequest("not_an_object")
    context = None
    sent_at = None
    if request.route == "batch":
        if type(payload) is AmbiguousObject:
            raise MalformedRequest("duplicate_key")
        events = payload.get("batch")
        if not isinstance(events, list):
            raise MalformedRequest("batch_not_a_list")
        context = payload.get("context")
        if context is not None and not isinstance(context, dict):
            raise MalformedRequest("invalid_batch_context")
        sent_at = payload.get("sentAt")
    elif request.route == "pixel":
        # type(payload) keeps the mark of an object with a duplicate key
        events = [payload if payload.get("type") is not None else type(payload)({**payload, "type": "track"})]
    else:
        events = [payload]
    facts = RequestFacts(
        source_id=source.source_id,
        received_at=now,
        ip=request.ip,
        user_agent=request.user_agent,
        sent_at=sent_at,
        context=context,
        limits=limits,
    )
    return events, facts


def _raw_entry(request: IngestRequest, source: Source, received_at: str, reason: str, *,
               secrets: list[str], parsed: object) -> QuarantineEntry:
    """The request body as received, minus the write key: a secret never goes to the lake.

    When the key came from a body that parsed, the parsed body is stored (uncompressed) without its
    ``writeKey``; otherwise every literal occurrence of the key in the raw bytes is redacted.
    """
    body, encoding = request.body, request.content_encoding
    if isinstance(parsed, dict) and "writeKey" in parsed:
        body = json.dumps({k: v for k, v in parsed.items() if k != "writeKey"}).encode()
        encoding = None
    for secret in secrets:
        body = body.replace(secret.encode(), b"[redacted write key]")
    return QuarantineEntry(
        reason=reason,
        source_id=source.source_id,
        received_at=received_at,
        route=request.route,
        raw_body=body,
        content_encoding=encoding,
        ip=request.ip,
        user_agent=request.user_agent,
    )


def _event_entry(
    request: IngestRequest, facts: RequestFacts, received_at: str, index: int, reason: str, raw: object
) -> QuarantineEntry:
    if isinstance(raw, dict) and "writeKey" in raw:
        raw = {k: v for k, v in raw.items() if k != "writeKey"}  # never store a secret in the lake
    if facts.minimise is not None and type(raw) is dict:
        raw = {**raw, "context": dict(raw["context"])} if isinstance(raw.get("context"), dict) else dict(raw)
        facts.minimise.event(raw)
    return QuarantineEntry(
        reason=reason,
        source_id=facts.source_id,
        received_at=received_at,
        route=request.route,
        index=index,
        # The parsed value cannot show a duplicate key: such an event is kept as the text sent.
        payload=as_sent(raw) if reason == "duplicate_key" else writable(raw),
        ip=request.ip,
        user_agent=request.user_agent,
        sent_at=writable(facts.sent_at),
        context=writable(dict(facts.context)) if facts.context else None,
    )
