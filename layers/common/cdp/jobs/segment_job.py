"""The scheduled segment job: snapshot the identity map and profiles, then run every segment.

The snapshots let SQL join events to resolved profiles (an event carries ids, not profiles).
Each segment runs on its own: one failing query is reported and leaves that segment's
previous membership intact; the others still run. When a segment failed for a reason that may
pass (throttling, a timeout), :func:`raise_if_incomplete` fails the invocation after the others
ran, so that EventBridge's retries run the tick again under the same run id: the segments that
completed replay their record, the failed ones run again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow.fs as pafs

from cdp.campaigns.definition import Campaign
from cdp.campaigns.scheduled import run_scheduled_campaigns
from cdp.errors import SegmentsIncomplete, StoreError
from cdp.identity.store import IdentityStore
from cdp.lake.parquet import write_identity_snapshot, write_profiles_snapshot
from cdp.segments.definition import SegmentDefinition
from cdp.segments.engines import QueryEngine
from cdp.segments.membership import MembershipChange, MembershipStore
from cdp.segments.run import SegmentRunReport, run_due_segments


@dataclass
class SegmentJobReport:
    run_id: str
    identities: int = 0
    profiles: int = 0
    lifecycle_changes: int = 0
    segments: list[SegmentRunReport] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # not due at this tick (their own schedule)
    failures: dict[str, str] = field(default_factory=dict)
    # The failed segments whose error may pass: worth running the tick again.
    retryable: list[str] = field(default_factory=list)
    # Scheduled campaigns: messages queued per campaign, not due, waiting, failed (ScheduledTickReport).
    campaigns: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "identities": self.identities, "profiles": self.profiles,
                "lifecycle_changes": self.lifecycle_changes,
                "segments": [r.to_dict() for r in self.segments], "skipped": self.skipped,
                "failures": self.failures, "retryable": self.retryable, "campaigns": self.campaigns}


def write_snapshots(store: IdentityStore, fs: pafs.FileSystem, root: str) -> tuple[int, int]:
    """Identifier -> live profile, and the live profiles, from one scan of the profiles."""
    live = [p for p in store.scan_profiles() if not p.is_tombstone]
    pairs = ((identifier, p.profile_id) for p in live for identifier in p.identifiers)
    return write_identity_snapshot(pairs, fs, root), write_profiles_snapshot((p.view() for p in live), fs, root)


def run_segment_job(definitions: list[SegmentDefinition], *, engine: QueryEngine, membership: MembershipStore,
                    publish: Callable[[list[MembershipChange]], None], run_id: str, now: datetime,
                    snapshot: Callable[[], tuple[int, int]] | None = None,
                    refresh: Callable[[], int] | None = None, campaigns: list[Campaign] | None = None,
                    enqueue: Callable[[list[dict[str, str]]], None] | None = None) -> SegmentJobReport:
    """Refresh time-based state (e.g. churn), snapshot profiles to the lake, run each due segment,
    then fan each due scheduled campaign out to the activation queue (``enqueue``)."""
    report = SegmentJobReport(run_id=run_id)
    if refresh is not None:
        report.lifecycle_changes = refresh()
    if snapshot is not None:
        report.identities, report.profiles = snapshot()
    tick = run_due_segments(definitions, engine=engine, membership=membership, publish=publish,
                            run_id=run_id, now=now)
    report.segments = tick.reports
    report.skipped = tick.skipped
    report.failures = {name: f"{exc.code}: {exc.reason}" for name, exc in tick.failures.items()}
    report.retryable = sorted(name for name, exc in tick.failures.items()
                              if isinstance(exc, StoreError) and exc.retryable)
    if campaigns and enqueue is not None:
        ticks = run_scheduled_campaigns(campaigns, store=membership, enqueue=enqueue, run_id=run_id, now=now,
                                        failed_segments=report.retryable)
        report.campaigns = ticks.to_dict()
        # A campaign whose fan-out failed, or whose segment will run again, goes out on the tick's retry.
        report.retryable += [f"campaign:{name}" for name, exc in sorted(ticks.failures.items())
                             if isinstance(exc, StoreError) and exc.retryable]
    return report


def raise_if_incomplete(report: SegmentJobReport) -> None:
    """Fail the tick when a segment may succeed if run again (the scheduler retries it under its run id)."""
    if report.retryable:
        raise SegmentsIncomplete("segments_incomplete", run_id=report.run_id, segments=report.retryable)
