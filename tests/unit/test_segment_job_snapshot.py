"""The segment job's one scan of the profiles (lifecycle refresh + snapshots), skipped by a tick that only replays."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from cdp.errors import ConcurrentUpdate
from cdp.identity import IdentityConfig, InMemoryIdentityStore, lookup_profile, resolve_batch
from cdp.identity.profile import Profile
from cdp.jobs.segment_job import refresh_and_snapshot, run_segment_job
from cdp.lake import PROFILES_PREFIX
from cdp.segments.definition import parse_segment
from cdp.segments.engines import QueryResult
from cdp.segments.membership import InMemoryMembershipStore, MembershipChange

CONFIG = IdentityConfig.from_dict({})
ORDERED = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
LATER = datetime(2027, 3, 1, tzinfo=UTC)  # long enough after the order to churn


def _order(user: str, message_id: str) -> dict[str, Any]:
    return {"messageId": message_id, "type": "track", "event": "Order Completed", "userId": user,
            "timestamp": "2026-11-01T10:00:00.000Z", "properties": {"revenue": 10}}


class CountingStore(InMemoryIdentityStore):
    def __init__(self) -> None:
        super().__init__()
        self.scans = 0

    def scan_profiles(self):  # type: ignore[no-untyped-def]
        self.scans += 1
        yield from super().scan_profiles()


class RacedStore(CountingStore):
    """Once ``racing``, every rewrite loses its race: the stored profile changed (a trait) after the scan."""

    racing = False

    def put_profile(self, profile: Profile) -> None:
        if not self.racing:
            return super().put_profile(profile)
        stored = self.profiles[profile.profile_id]
        stored.traits["plan"] = "pro"
        raise ConcurrentUpdate("updated since read")


def _stages(root: str) -> list[tuple[str, str]]:
    table = pq.read_table(f"{root}/{PROFILES_PREFIX}/profiles.parquet", filesystem=pafs.LocalFileSystem())
    return sorted(zip(table["profile_id"].to_pylist(), table["lifecycle_stage"].to_pylist(), strict=True))


def test_one_scan_refreshes_the_stages_and_the_snapshot_holds_them_as_refreshed(tmp_path) -> None:
    # Given a customer whose last order is months before the job runs
    store = CountingStore()
    resolve_batch([_order("1", "o1")], store, config=CONFIG, now=ORDERED)
    # When the job refreshes and snapshots
    changed, identities, profiles = refresh_and_snapshot(store, pafs.LocalFileSystem(), str(tmp_path),
                                                         config=CONFIG, now=LATER)
    # Then one scan churned the customer in the store and in the snapshot alike
    assert (changed, identities, profiles, store.scans) == (1, 1, 1, 1)
    stored = lookup_profile("user_id:1", store)
    assert stored is not None and stored["lifecycle_stage"] == "churned"
    assert _stages(str(tmp_path)) == [(stored["profile_id"], "churned")]


def test_a_profile_written_since_the_scan_is_snapshotted_as_scanned(tmp_path) -> None:
    # Given a profile that changes between the scan and its refresh
    store = RacedStore()
    resolve_batch([_order("1", "o1")], store, config=CONFIG, now=ORDERED)
    store.racing = True
    # When the job refreshes and snapshots
    changed, _, profiles = refresh_and_snapshot(store, pafs.LocalFileSystem(), str(tmp_path), config=CONFIG,
                                                now=LATER)
    # Then the refresh is left to the next run, and the snapshot holds the profile as scanned, not the lost write
    table = pq.read_table(f"{tmp_path}/{PROFILES_PREFIX}/profiles.parquet", filesystem=pafs.LocalFileSystem())
    assert (changed, profiles) == (0, 1)
    assert table["lifecycle_stage"].to_pylist() == ["new_customer"]


class Engine:
    dialect = "duckdb"

    def run(self, sql: str) -> QueryResult:
        return QueryResult([{"profile_id": "p1"}], 10)


SEGMENTS = [parse_segment("name: a\ncondition: {event: Page Viewed, within_days: 30}\n"),
            parse_segment("name: b\ncondition: {event: Order Completed, within_days: 30}\n")]


def _tick(store: InMemoryMembershipStore, snapshots: list[int], run_id: str, *, segments=SEGMENTS):  # type: ignore[no-untyped-def]
    def snapshot() -> tuple[int, int, int]:
        snapshots.append(1)
        return 0, 1, 1

    changes: list[MembershipChange] = []
    return run_segment_job(segments, engine=Engine(), membership=store, publish=changes.extend, run_id=run_id,
                           now=ORDERED, snapshot=snapshot)


def test_a_retried_tick_whose_segments_all_completed_replays_without_a_new_snapshot() -> None:
    store, snapshots = InMemoryMembershipStore(), []  # type: ignore[var-annotated]
    first = _tick(store, snapshots, "tick-1")
    retry = _tick(store, snapshots, "tick-1")
    assert len(snapshots) == 1
    assert [r.replayed for r in retry.segments] == [True, True]
    assert [r.members for r in retry.segments] == [r.members for r in first.segments]


def test_a_retried_tick_with_a_segment_left_to_run_snapshots_again() -> None:
    # Given a tick that completed segment a only (b was added, or failed, since)
    store, snapshots = InMemoryMembershipStore(), []  # type: ignore[var-annotated]
    _tick(store, snapshots, "tick-1", segments=SEGMENTS[:1])
    # When the tick is retried with both
    retry = _tick(store, snapshots, "tick-1")
    # Then b runs on a new snapshot
    assert len(snapshots) == 2
    assert [r.replayed for r in retry.segments] == [True, False]


def test_a_new_tick_snapshots() -> None:
    store, snapshots = InMemoryMembershipStore(), []  # type: ignore[var-annotated]
    _tick(store, snapshots, "tick-1")
    _tick(store, snapshots, "tick-2")
    assert len(snapshots) == 2
