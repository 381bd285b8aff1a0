"""One person's events from the lake, without a full scan (pyarrow; never imported by the collector).

The lake is partitioned by event date (``dt``) and has no index by person. A person's events lie
between the profile's ``first_seen`` and ``last_seen``, so only those days are read, newest first,
in two passes per run of days:

1. the identifier columns (``user_id``, ``anonymous_id``, ``email``) plus ``message_id`` and
   ``timestamp``, filtered on the person's identifiers: Parquet's column projection and row-group
   statistics keep this to a few columns' pages;
2. every column, only for the ``limit`` latest matches and only in the days that hold them.

Reading stops as soon as the newer days hold ``limit`` matches: older days cannot change the latest
``limit``. Events that carry none of the three identifiers (only a device id, say) are not found.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from cdp.identity.identifiers import split_identifier
from cdp.times import parse_time

from . import EVENTS_PREFIX, row_to_event
from .parquet import EVENTS_SCHEMA, published_files

#: Lake column holding each identifier type (the types the archive writes a column for).
ID_COLUMNS = {"user_id": "user_id", "anonymous_id": "anonymous_id", "email": "email"}
#: Days read per pass: a week of a busy lake is still a few files per day after compaction.
DAYS_PER_PASS = 7
#: One day of margin on each side: an event's partition is its timestamp's date, the profile's
#: first/last seen may come from another of its times (receivedAt, originalTimestamp).
MARGIN_DAYS = 1
#: Ten years at most, whatever the profile says.
MAX_DAYS = 3660

_PARTITIONING = ds.partitioning(pa.schema([("dt", pa.string())]), flavor="hive")
_SCHEMA = EVENTS_SCHEMA.append(pa.field("dt", pa.string()))


@dataclass
class PersonEvents:
    """The latest ``limit`` events of a person, oldest first, and what was read to find them."""

    events: list[dict[str, Any]] = field(default_factory=list)
    matched: int = 0  # matching events in the days read (at least len(events))
    days_read: list[str] = field(default_factory=list)  # the dt partitions read, newest first
    more: bool = False  # older days were left unread, or more matched than ``limit``

    def to_dict(self) -> dict[str, Any]:
        return {"events": self.events, "matched": self.matched, "more": self.more,
                "days_read": {"from": self.days_read[-1] if self.days_read else None,
                              "to": self.days_read[0] if self.days_read else None,
                              "count": len(self.days_read)}}


def identifier_filter(identifiers: Iterable[str]) -> ds.Expression | None:
    """``user_id IN (...) OR anonymous_id IN (...) OR email IN (...)`` for ``type:value`` identifiers."""
    values: dict[str, set[str]] = {}
    for identifier in identifiers:
        kind, value = split_identifier(identifier)
        if kind in ID_COLUMNS and value:
            values.setdefault(ID_COLUMNS[kind], set()).add(value)
    expression: ds.Expression | None = None
    for column, wanted in sorted(values.items()):
        term = pc.field(column).isin(sorted(wanted))
        expression = term if expression is None else expression | term
    return expression


def days_between(first_seen: str | None, last_seen: str | None) -> list[str]:
    """The ``dt`` values from ``last_seen`` back to ``first_seen`` (with the margin), newest first."""
    first, last = parse_time(first_seen), parse_time(last_seen)
    if first is None or last is None:
        return []
    start = first.date() - timedelta(days=MARGIN_DAYS)
    end = last.date() + timedelta(days=MARGIN_DAYS)
    start = max(start, end - timedelta(days=MAX_DAYS - 1))
    return [(end - timedelta(days=n)).isoformat() for n in range((end - start).days + 1)]


def person_events(
    fs: pafs.FileSystem, root: str, identifiers: Sequence[str], *,
    first_seen: str | None, last_seen: str | None, limit: int,
) -> PersonEvents:
    """The latest ``limit`` events carrying any of ``identifiers``, oldest first (see the module)."""
    result = PersonEvents()
    where = identifier_filter(identifiers)
    days = days_between(first_seen, last_seen)
    if where is None or not days or limit < 1:
        return result
    hits: list[tuple[Any, str, str]] = []  # (timestamp, message_id, dt)
    seen: set[str] = set()
    for start in range(0, len(days), DAYS_PER_PASS):
        chunk = days[start:start + DAYS_PER_PASS]
        result.days_read.extend(chunk)
        files = _files(fs, root, chunk)
        if files:
            table = _dataset(fs, root, files).to_table(columns=["message_id", "timestamp", "dt"], filter=where)
            for row in table.to_pylist():
                mid = row["message_id"] or ""
                if mid not in seen:  # a redelivered batch may have left a row twice
                    seen.add(mid)
                    hits.append((row["timestamp"], mid, row["dt"]))
        if len(hits) >= limit:
            result.more = start + DAYS_PER_PASS < len(days)
            break
    result.matched = len(hits)
    hits.sort(key=lambda h: (h[0] is not None, h[0], h[1]))
    latest = hits[-limit:]
    result.more = result.more or len(hits) > limit
    result.events = _full_rows(fs, root, latest)
    return result


def _full_rows(fs: pafs.FileSystem, root: str, latest: list[tuple[Any, str, str]]) -> list[dict[str, Any]]:
    if not latest:
        return []
    files = _files(fs, root, sorted({dt for _, _, dt in latest}))
    order = {mid: n for n, (_, mid, _) in enumerate(latest)}
    table = _dataset(fs, root, files).to_table(filter=pc.field("message_id").isin(sorted(order)))
    rows: dict[str, dict[str, Any]] = {}
    for row in table.to_pylist():
        rows.setdefault(row["message_id"] or "", row)
    return [row_to_event(rows[mid]) for mid in sorted(rows, key=order.__getitem__)]


def _files(fs: pafs.FileSystem, root: str, days: Iterable[str]) -> list[str]:
    return [info.path for day in days for info in published_files(fs, f"{root}/{EVENTS_PREFIX}/dt={day}")]


def _dataset(fs: pafs.FileSystem, root: str, files: list[str]) -> ds.Dataset:
    return ds.dataset(files, schema=_SCHEMA, filesystem=fs, format="parquet",
                      partitioning=_PARTITIONING, partition_base_dir=f"{root}/{EVENTS_PREFIX}")

