"""Bulk import: rows -> validated events on the stream, rejects to the quarantine, a report.

Each row is mapped (:mod:`cdp.imports.rows`) and then validated and normalised by the collector's
own :func:`cdp.collect.events.normalise_event`. Message ids are stable, so sending a row twice (a
re-import, a retried chunk) is a no-op downstream: unify drops a messageId it already applied and
the lake counts distinct ids. Rows are sent in batches at a bounded rate; after each batch the
progress can be committed (a checkpoint), and a run that must stop (Lambda's time limit) resumes
from the last committed row.
"""

from __future__ import annotations

import base64
import hashlib
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cdp.collect.events import OutgoingRecord, RequestFacts, normalise_event
from cdp.collect.ingest import EventSink, Quarantine, QuarantineEntry
from cdp.errors import InvalidEvent
from cdp.identity.config import IdentityConfig
from cdp.times import format_time

from .mapping import ImportMapping
from .rows import json_value, primary_identifier, row_to_event

#: Rows per batch: one PutRecords call at most (500 records) and one quarantine object.
BATCH_ROWS = 500
#: Records per second sent by default: half a shard's write limit, leaving room for live traffic.
DEFAULT_RATE = 500.0
MALFORMED_ROW = "malformed_row"


@dataclass(frozen=True, slots=True)
class Row:
    """One row of a file: ``values`` by column, or ``malformed`` (the text of a row that did not parse)."""

    number: int
    values: Mapping[str, Any] | None = None
    malformed: str | None = None


@dataclass
class ImportReport:
    """What an import did. ``next_row`` rows of the file are done: a resumed run starts after them."""

    source_id: str
    mapping: str
    file: str
    format: str = ""
    rows_read: int = 0
    accepted: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    next_row: int = 0
    complete: bool = False
    invocations: int = 0
    started_at: str = ""
    finished_at: str = ""
    #: 8-byte digests of the highest-priority identifier of every accepted row.
    profiles: set[int] = field(default_factory=set, repr=False)

    @property
    def profiles_touched(self) -> int:
        return len(self.profiles)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source_id, "mapping": self.mapping, "file": self.file, "format": self.format,
            "complete": self.complete, "rows_read": self.rows_read, "accepted": self.accepted,
            "rejected": self.rejected, "rejected_by_reason": dict(self.reasons.most_common()),
            "profiles_touched": self.profiles_touched, "invocations": self.invocations,
            "started_at": self.started_at, "finished_at": self.finished_at,
        }

    def to_checkpoint(self) -> dict[str, Any]:
        packed = b"".join(d.to_bytes(8, "big") for d in sorted(self.profiles))
        return {**self.to_dict(), "next_row": self.next_row,
                "profiles": base64.b64encode(zlib.compress(packed)).decode("ascii")}

    @classmethod
    def from_checkpoint(cls, data: Mapping[str, Any]) -> ImportReport:
        packed = zlib.decompress(base64.b64decode(data["profiles"])) if data.get("profiles") else b""
        return cls(
            source_id=data["source"], mapping=data["mapping"], file=data["file"], format=data.get("format", ""),
            rows_read=int(data["rows_read"]), accepted=int(data["accepted"]), rejected=int(data["rejected"]),
            reasons=Counter(data.get("rejected_by_reason", {})), next_row=int(data["next_row"]),
            invocations=int(data.get("invocations", 0)), started_at=data.get("started_at", ""),
            profiles={int.from_bytes(packed[i:i + 8], "big") for i in range(0, len(packed), 8)},
        )


class Pacer:
    """Holds the average send rate to ``rate`` records per second (None: as fast as the stream takes)."""

    def __init__(self, rate: float | None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._rate = rate if rate and rate > 0 else None
        self._clock = clock
        self._sleep = sleep
        self._start = clock()
        self._sent = 0

    def sent(self, count: int) -> None:
        if self._rate is None:
            return
        self._sent += count
        wait = self._start + self._sent / self._rate - self._clock()
        if wait > 0:
            self._sleep(wait)


def import_rows(
    rows: Iterable[Row],
    *,
    mapping: ImportMapping,
    identity: IdentityConfig,
    report: ImportReport,
    sink: EventSink,
    quarantine: Quarantine,
    now: datetime,
    pacer: Pacer | None = None,
    batch_rows: int = BATCH_ROWS,
    should_stop: Callable[[], bool] = lambda: False,
    commit: Callable[[ImportReport], None] | None = None,
    commit_every: int = 1,
) -> ImportReport:
    """Send ``rows`` (after the first ``report.next_row``, already done) and update ``report``.

    Per batch: rejects go to the quarantine first, then the accepted events to the stream, then
    ``commit(report)`` records the progress (every ``commit_every`` batches, and before stopping). Returns when the rows are exhausted (``complete``) or
    when ``should_stop()`` says so between batches. A failing store raises (nothing after the last
    commit counts as done; the stable ids make sending it again harmless).
    """
    pacer = pacer or Pacer(None)
    facts = RequestFacts(source_id=report.source_id, received_at=now)
    received_at = format_time(now)
    batch: list[Row] = []
    skip = report.next_row
    sent = 0
    for position, row in enumerate(rows):
        if position < skip:
            continue
        batch.append(row)
        if len(batch) >= batch_rows:
            _send(batch, mapping, identity, report, facts, received_at, sink, quarantine, pacer)
            batch = []
            sent += 1
            stop = should_stop()
            if commit and (stop or sent % commit_every == 0):
                commit(report)
            if stop:
                return report
    if batch:
        _send(batch, mapping, identity, report, facts, received_at, sink, quarantine, pacer)
    report.complete = True
    report.finished_at = format_time(now)
    if commit:
        commit(report)
    return report


def _send(batch: list[Row], mapping: ImportMapping, identity: IdentityConfig, report: ImportReport,
          facts: RequestFacts, received_at: str, sink: EventSink, quarantine: Quarantine, pacer: Pacer) -> None:
    records: list[OutgoingRecord] = []
    profiles: set[int] = set()
    entries: list[QuarantineEntry] = []
    for row in batch:
        raw: dict[str, Any] | None = None
        try:
            if row.values is None:
                raise InvalidEvent(MALFORMED_ROW)
            raw = row_to_event(row.values, mapping=mapping, identity=identity, source_id=report.source_id,
                               file_id=report.file, row_number=row.number)
            records.append(normalise_event(raw, route_type=None, facts=facts))
        except InvalidEvent as exc:
            payload = raw or {"type": mapping.type, "context": {"import": {
                "source": report.source_id, "file": report.file, "row": row.number,
                **({"text": row.malformed[:4096]} if row.malformed is not None else {}),
                **({"values": json_value(dict(row.values))} if row.values is not None else {}),
            }}}
            entries.append(QuarantineEntry(reason=exc.reason, source_id=report.source_id,
                                           received_at=received_at, route=mapping.type, index=row.number,
                                           payload=payload))
            continue
        primary = primary_identifier(row.values, mapping=mapping, identity=identity)
        if primary is not None:
            profiles.add(int.from_bytes(hashlib.sha256(primary.encode()).digest()[:8], "big"))
    if entries:
        quarantine.put(entries)
    if records:
        sink.put(records)
        pacer.sent(len(records))
    report.rows_read += len(batch)
    report.accepted += len(records)
    report.rejected += len(entries)
    report.reasons.update(e.reason for e in entries)
    report.profiles |= profiles
    report.next_row += len(batch)
