"""Real-time segments: a changed profile enters or exits profile-only segments, once."""

from __future__ import annotations

from datetime import UTC, datetime

from cdp.segments.catalog import lifecycle_segments
from cdp.segments.definition import parse_segment
from cdp.segments.engines import QueryResult
from cdp.segments.membership import InMemoryMembershipStore, MembershipChange
from cdp.segments.realtime import evaluate_changes, realtime_segments
from cdp.segments.run import run_segment

NOW = datetime(2024, 3, 31, 12, 0, tzinfo=UTC)
PRO = parse_segment("name: pro\ncondition: {trait: plan, eq: pro}\n")
BUYERS = parse_segment("name: rb\ncondition: {event: Order Completed, within_days: 30, min_count: 2}\n")


def evaluate(profile, store, run_id="rt:m1"):
    sent: list[MembershipChange] = []
    changes = evaluate_changes(
        [PRO, BUYERS], profile, membership=store, publish=sent.extend, run_id=run_id, now=NOW
    )
    return changes, sent


def test_only_profile_only_definitions_are_realtime():
    assert realtime_segments([PRO, BUYERS]) == [PRO]


def test_every_built_in_lifecycle_segment_is_realtime():
    assert all(d.is_realtime for d in lifecycle_segments())
    assert len(lifecycle_segments()) == 7


def test_a_profile_that_starts_to_match_enters_and_is_stored():
    store = InMemoryMembershipStore()

    changes, sent = evaluate({"profile_id": "p1", "traits": {"plan": "pro"}}, store)

    assert [(c.segment, c.profile_id, c.change, c.run_id) for c in sent] == [
        ("pro", "p1", "entered", "rt:m1")
    ]
    assert store.member("pro", "p1").entered_run == "rt:m1"
    assert changes == sent


def test_a_profile_that_still_matches_is_not_announced_again():
    store = InMemoryMembershipStore()
    evaluate({"profile_id": "p1", "traits": {"plan": "pro"}}, store)

    _, sent = evaluate({"profile_id": "p1", "traits": {"plan": "pro", "age": 3}}, store, run_id="rt:m2")

    assert sent == []


def test_a_profile_that_stops_matching_exits():
    store = InMemoryMembershipStore()
    evaluate({"profile_id": "p1", "traits": {"plan": "pro"}}, store)

    _, sent = evaluate({"profile_id": "p1", "traits": {"plan": "free"}}, store, run_id="rt:m2")

    assert [(c.change, c.run_id) for c in sent] == [("exited", "rt:m2")]
    assert store.member("pro", "p1") is None


def test_a_scheduled_run_after_a_realtime_entry_does_not_announce_it_again():
    store = InMemoryMembershipStore()
    evaluate({"profile_id": "p1", "traits": {"plan": "pro"}}, store)

    class Engine:
        dialect = "duckdb"

        def run(self, sql):
            return QueryResult([{"profile_id": "p1"}], 0)

    sent: list[MembershipChange] = []
    report = run_segment(PRO, engine=Engine(), membership=store, publish=sent.extend, run_id="r9", now=NOW)

    assert sent == []
    assert report.members == 1
