"""The scheduled segment job: snapshot the identity map and profiles, then run every segment.

The snapshots let SQL join events to resolved profiles (an event carries ids, not profiles).
One scan of the profiles serves both the lifecycle refresh (churn happens by not acting, so no
event says so) and the snapshots: :func:`refresh_and_snapshot`. A retried tick whose due segments
all completed under its run id replays their records without scanning or snapshotting again (the
first attempt did both before any segment ran).
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
from cdp.errors import ConcurrentUpdate, SegmentsIncomplete, StoreError
from cdp.identity.config import IdentityConfig
from cdp.identity.profile import Profile
from cdp.identity.refresh import refresh_profile
from cdp.identity.store import IdentityStore
from cdp.lake.parquet import write_identity_snapshot, write_profiles_snapshot
from cdp.segments.definition import SegmentDefinition
from cdp.segments.engines import QueryEngine
from cdp.segments.membership import MembershipChange, MembershipStore
from cdp.segments.run import SegmentRunReport, run_due_segments, tick_is_replay


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
    return _write_snapshots([p for p in store.scan_profiles() if not p.is_tombstone], fs, root)


def refresh_and_snapshot(store: IdentityStore, fs: pafs.FileSystem, root: str, *, config: IdentityConfig,
                         now: datetime) -> tuple[int, int, int]:
    """One scan of the profiles: each live profile's lifecycle stage refreshed as of ``now`` (rewritten
    when it changed, :func:`cdp.identity.refresh.refresh_profile`), then the snapshots of the live
    profiles as refreshed. A profile written since the scan (its rewrite lost the race to an event) is
    snapshotted as scanned; the next tick or its next event settles its stage.
    Returns (stages changed, identifiers, profiles)."""
    live: list[Profile] = []
    changed = 0
    for profile in store.scan_profiles():
        if profile.is_tombstone:
            continue
        scanned = profile.lifecycle, profile.updated_at, profile.version
        try:
            changed += refresh_profile(store, profile, config=config, now=now)
        except ConcurrentUpdate:
            profile.lifecycle, profile.updated_at, profile.version = scanned
        live.append(profile)
    return changed, *_write_snapshots(live, fs, root)


def _write_snapshots(live: list[Profile], fs: pafs.FileSystem, root: str) -> tuple[int, int]:
    pairs = ((identifier, p.profile_id) for p in live for identifier in p.identifiers)
    return write_identity_snapshot(pairs, fs, root), write_profiles_snapshot((p.view() for p in live), fs, root)


def run_segment_job(definitions: list[SegmentDefinition], *, engine: QueryEngine, membership: MembershipStore,
                    publish: Callable[[list[MembershipChange]], None], run_id: str, now: datetime,
                    snapshot: Callable[[], tuple[int, int, int]] | None = None, campaigns: list[Campaign] | None = None,
                    enqueue: Callable[[list[dict[str, str]]], None] | None = None) -> SegmentJobReport:
    """Refresh time-based state (e.g. churn) and snapshot profiles to the lake (``snapshot``: returns
    stages changed, identifiers, profiles), run each due segment, then fan each due scheduled campaign
    out to the activation queue (``enqueue``). A retry of a tick whose segments all completed skips
    the snapshot: its first attempt took it before any segment ran."""
    report = SegmentJobReport(run_id=run_id)
    if snapshot is not None and not tick_is_replay(definitions, membership=membership, run_id=run_id, now=now):
        report.lifecycle_changes, report.identities, report.profiles = snapshot()
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
