"""``cdp quarantine list|replay``: look at what was refused, and re-submit what now passes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from cdp.errors import InvalidEvent, MalformedRequest, PayloadTooLarge
from cdp.times import parse_timestamp

from .body import MAX_REQUEST_BYTES, decode_body
from .events import OutgoingRecord, RequestFacts, normalise_event
from .ingest import EventSink, IngestRequest, QuarantineEntry, Source, _event_entry, _unpack


class QuarantineStore(Protocol):
    def keys(self, *, day_from: str | None = None, day_to: str | None = None) -> list[str]:
        """Object keys, oldest day first; days are ``YYYY-MM-DD`` and inclusive."""

    def read(self, key: str) -> list[QuarantineEntry]: ...

    def rewrite(self, key: str, entries: Sequence[QuarantineEntry]) -> None:
        """Replace the object's entries (delete the object when none remain)."""


@dataclass(frozen=True, slots=True)
class QuarantinedItem:
    key: str
    line: int
    entry: QuarantineEntry


@dataclass
class ReplayReport:
    replayed: int = 0
    still_rejected: int = 0
    objects: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    dry_run: bool = False
    # Events about a suppressed person (a privacy request): left in quarantine, never streamed.
    suppressed: int = 0


def list_quarantine(
    store: QuarantineStore,
    *,
    day_from: str | None = None,
    day_to: str | None = None,
    source_id: str | None = None,
    reason: str | None = None,
    limit: int | None = 100,
) -> list[QuarantinedItem]:
    """Quarantined entries, oldest first, filtered by day range, source and reason code."""
    found: list[QuarantinedItem] = []
    for key in store.keys(day_from=day_from, day_to=day_to):
        for line, entry in enumerate(store.read(key)):
            if (source_id is None or entry.source_id == source_id) and (
                reason is None or entry.reason == reason
            ):
                found.append(QuarantinedItem(key, line, entry))
                if limit is not None and len(found) >= limit:
                    return found
    return found


def replay_quarantine(
    store: QuarantineStore,
    sink: EventSink,
    *,
    day_from: str | None = None,
    day_to: str | None = None,
    source_id: str | None = None,
    dry_run: bool = False,
    max_request_bytes: int = MAX_REQUEST_BYTES,
    suppressed: Callable[[Mapping[str, Any]], bool] | None = None,
) -> ReplayReport:
    """Re-validate every quarantined entry; stream those that pass and keep the rest quarantined.

    Events keep the time they were first received, so their timestamps come out as they would
    have then. The stream is written before the quarantine object is rewritten: a crash in
    between replays again (the same ``messageId``), it never loses an event.
    """
    report = ReplayReport(dry_run=dry_run)
    for key in store.keys(day_from=day_from, day_to=day_to):
        entries = store.read(key)
        records: list[OutgoingRecord] = []
        remaining: list[QuarantineEntry] = []
        for entry in entries:
            if source_id is not None and entry.source_id != source_id:
                remaining.append(entry)
                continue
            passed, failed = _revalidate(entry, max_request_bytes)
            if suppressed is not None and any(suppressed(r.event) for r in passed):
                report.suppressed += 1
                remaining.append(entry)
                continue
            records.extend(passed)
            remaining.extend(failed)
            report.still_rejected += len(failed)
            report.reasons.update(e.reason for e in failed)
        if not records:
            continue
        report.replayed += len(records)
        report.objects += 1
        if not dry_run:
            sink.put(records)
            store.rewrite(key, remaining)
    return report


def _revalidate(
    entry: QuarantineEntry, max_request_bytes: int
) -> tuple[list[OutgoingRecord], list[QuarantineEntry]]:
    received_at = parse_timestamp(entry.received_at)
    request = IngestRequest(
        route=entry.route,
        body=entry.raw_body or b"",
        content_encoding=entry.content_encoding,
        ip=entry.ip,
        user_agent=entry.user_agent,
    )
    events: list[object]
    indexes: Sequence[int | None]
    if entry.raw_body is not None:
        try:
            payload = decode_body(entry.raw_body, entry.content_encoding, limit=max_request_bytes)
            events, facts = _unpack(request, payload, Source(entry.source_id, ""), received_at)
        except (MalformedRequest, PayloadTooLarge) as exc:
            return [], [replace(entry, reason=exc.reason)]
        indexes = range(len(events))
    elif isinstance(entry.context, str):  # the batch context kept as text is still unreadable
        return [], [entry]
    else:
        events = [entry.payload]
        indexes = [entry.index]
        facts = RequestFacts(
            source_id=entry.source_id,
            received_at=received_at,
            ip=entry.ip,
            user_agent=entry.user_agent,
            sent_at=entry.sent_at,
            context=entry.context if isinstance(entry.context, dict) else None,
        )
    route_type = None if entry.route in ("batch", "pixel") else entry.route
    passed: list[OutgoingRecord] = []
    failed: list[QuarantineEntry] = []
    for index, raw in zip(indexes, events, strict=True):
        try:
            passed.append(normalise_event(raw, route_type=route_type, facts=facts))
        except InvalidEvent as exc:
            if entry.raw_body is None:
                failed.append(replace(entry, reason=exc.reason))
            else:  # the body is readable now: keep only its refused events, one entry each
                failed.append(_event_entry(request, facts, entry.received_at, index or 0, exc.reason, raw))
    return passed, failed
