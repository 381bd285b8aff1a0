"""One segment run: query the members, diff with the stored membership, publish, then store.

Order matters. New entries are stored FIRST as unannounced members (an outbox), then every change
is published, then entries are marked announced and exits removed. Whatever is found unannounced
by a later run (a retry of this one, or the next scheduled or real-time evaluation) is published
again with its STORED entry run id, which activation dedupes on ``(segment, profile_id, run_id)``:
an entry is announced under one id only, even if the run crashes between any two steps. A run that completed is recorded under its run id, so a
retry of a completed run publishes nothing and returns the first report. A failed query raises
before anything is published or stored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from cdp.errors import CdpError
from cdp.segments.compiler import compile_segment
from cdp.segments.definition import SegmentDefinition
from cdp.segments.engines import QueryEngine
from cdp.segments.membership import Change, Member, MembershipChange, MembershipStore, store_announced
from cdp.segments.schedule import is_due
from cdp.times import as_utc, format_time, parse_time


@dataclass(frozen=True, slots=True)
class SegmentRunReport:
    segment: str
    run_id: str
    at: str
    members: int
    entered: int
    exited: int
    bytes_scanned: int
    replayed: bool = False  # True when this run id had already completed: nothing was redone

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SegmentRunReport:
        return cls(
            segment=str(data["segment"]),
            run_id=str(data["run_id"]),
            at=str(data["at"]),
            members=int(data["members"]),
            entered=int(data["entered"]),
            exited=int(data["exited"]),
            bytes_scanned=int(data["bytes_scanned"]),
            replayed=bool(data.get("replayed", False)),
        )


def query_members(defn: SegmentDefinition, *, engine: QueryEngine, now: datetime) -> tuple[set[str], int]:
    """The profile ids in ``defn`` at ``now`` and the bytes the query scanned."""
    result = engine.run(compile_segment(defn, now=now, dialect=engine.dialect))
    members = {str(row["profile_id"]) for row in result.rows if row.get("profile_id") is not None}
    return members, result.bytes_scanned


def diff_membership(
    segment: str, previous: dict[str, Member], current: set[str], *, run_id: str, at: str
) -> tuple[list[Member], list[str], list[MembershipChange]]:
    """New (unannounced) members, exited profile ids and the changes to publish (entries first, sorted).

    Members stored but not yet announced are announced again with their stored run id and time.
    """
    entered = [
        Member(profile_id=p, entered_run=run_id, entered_at=at, announced=False)
        for p in sorted(current - previous.keys())
    ]
    unannounced = [m for p, m in previous.items() if p in current and not m.announced]
    exited = sorted(previous.keys() - current)
    entries = sorted([*entered, *unannounced], key=lambda m: m.profile_id)
    changes = [MembershipChange(segment, m.profile_id, Change.ENTERED, m.entered_run, m.entered_at) for m in entries]
    changes += [MembershipChange(segment, p, Change.EXITED, run_id, at) for p in exited]
    return entered, exited, changes


def run_segment(
    defn: SegmentDefinition,
    *,
    engine: QueryEngine,
    membership: MembershipStore,
    publish: Callable[[list[MembershipChange]], None],
    run_id: str,
    now: datetime,
) -> SegmentRunReport:
    """Recompute ``defn`` at ``now`` and hand who entered and who exited to ``publish``.

    Idempotent by ``run_id``: pass the same id (e.g. the scheduler's event id) and the same ``now``
    when retrying. Raises ``QueryFailed`` (membership untouched) when the query fails.
    """
    done = membership.completed_run(defn.name, run_id)
    if done is not None:
        return SegmentRunReport.from_dict({**done, "replayed": True})

    now = as_utc(now)
    at = format_time(now)
    current, bytes_scanned = query_members(defn, engine=engine, now=now)
    previous = membership.members(defn.name)
    entered, exited, changes = diff_membership(defn.name, previous, current, run_id=run_id, at=at)
    if entered:
        membership.apply(defn.name, entered, [])  # the outbox: stored before anyone hears of them
    if changes:
        publish(changes)
        store_announced(membership, changes)
    report = SegmentRunReport(
        segment=defn.name,
        run_id=run_id,
        at=at,
        members=len(current),
        entered=sum(1 for c in changes if c.change is Change.ENTERED),
        exited=len(exited),
        bytes_scanned=bytes_scanned,
    )
    membership.record_run(defn.name, run_id, report.to_dict())
    return report


# ---------------------------------------------------------------- preview and scheduled ticks


@dataclass(frozen=True, slots=True)
class Preview:
    """What a run would find, without storing or publishing anything."""

    segment: str
    count: int
    sample: list[str]
    bytes_scanned: int
    sql: str = ""


def preview_segment(
    defn: SegmentDefinition, engine: QueryEngine, now: datetime, *, sample_size: int = 10
) -> Preview:
    """The members' count, a sample of them (sorted) and the bytes the query scanned."""
    sql = compile_segment(defn, now=now, dialect=engine.dialect)
    result = engine.run(sql)
    found = sorted({str(r["profile_id"]) for r in result.rows if r.get("profile_id") is not None})
    return Preview(
        segment=defn.name,
        count=len(found),
        sample=found[:sample_size],
        bytes_scanned=result.bytes_scanned,
        sql=sql,
    )


@dataclass(frozen=True, slots=True)
class TickSummary:
    reports: list[SegmentRunReport]
    skipped: list[str]  # not due on this tick
    failures: dict[str, CdpError]  # segment name -> typed error; the others still ran


def tick_is_replay(defns: Iterable[SegmentDefinition], *, membership: MembershipStore, run_id: str,
                   now: datetime) -> bool:
    """True when a tick would only replay: every segment :func:`run_due_segments` would run at ``now``
    already completed under ``run_id`` (a retried tick), and at least one did."""
    replayed = False
    for defn in defns:
        last = membership.last_run(defn.name)
        if last and last.get("run_id") == run_id:
            replayed = True
            continue
        if last and not is_due(defn.schedule, now=now, last_run_at=parse_time(last.get("at"))):
            continue
        if membership.completed_run(defn.name, run_id) is None:
            return False
        replayed = True
    return replayed


def run_due_segments(
    defns: Iterable[SegmentDefinition],
    *,
    engine: QueryEngine,
    membership: MembershipStore,
    publish: Callable[[list[MembershipChange]], None],
    run_id: str,
    now: datetime,
) -> TickSummary:
    """Run every definition due at ``now`` (see cdp.segments.schedule); one failing segment does not
    stop the others. Retrying the tick with the same ``run_id`` redoes only what did not complete."""
    reports: list[SegmentRunReport] = []
    skipped: list[str] = []
    failures: dict[str, CdpError] = {}
    for defn in defns:
        last = membership.last_run(defn.name)
        retry_of_last = last is not None and last.get("run_id") == run_id
        if (
            last
            and not retry_of_last
            and not is_due(defn.schedule, now=now, last_run_at=parse_time(last.get("at")))
        ):
            skipped.append(defn.name)
            continue
        try:
            reports.append(
                run_segment(
                    defn, engine=engine, membership=membership, publish=publish, run_id=run_id, now=now
                )
            )
        except CdpError as exc:
            failures[defn.name] = exc
    return TickSummary(reports=reports, skipped=skipped, failures=failures)
