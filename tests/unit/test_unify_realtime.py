"""Unify evaluates profile-only segments as events arrive: entered and exited within the batch."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from cdp.identity.config import IdentityConfig
from cdp.identity.store import InMemoryIdentityStore
from cdp.jobs.unify_job import RealtimeSegments, unify_records
from cdp.segments.definition import parse_segment
from cdp.segments.membership import InMemoryMembershipStore, MembershipChange
from cdp.streams import DeliveredRecord

PRO = parse_segment("name: pro\ncondition:\n  trait: plan\n  in: [pro]\n", "pro.yaml")
BUYERS = parse_segment("name: buyers\ncondition:\n  event: Order Completed\n  within_days: 30\n", "b.yaml")
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


def _records(*events: dict) -> list[DeliveredRecord]:
    return [DeliveredRecord("shardId-0", str(i + 1), json.dumps({"timestamp": "2026-11-20T10:00:00.000Z", **e}).encode())
            for i, e in enumerate(events)]


def _setup() -> tuple[InMemoryIdentityStore, InMemoryMembershipStore, list[MembershipChange], RealtimeSegments]:
    published: list[MembershipChange] = []
    membership = InMemoryMembershipStore()
    return (InMemoryIdentityStore(), membership, published,
            RealtimeSegments([PRO, BUYERS], membership, published.extend))


def test_a_trait_change_enters_and_then_exits_a_realtime_segment() -> None:
    store, membership, published, realtime = _setup()
    unify_records(_records({"messageId": "m1", "type": "identify", "userId": "u1", "traits": {"plan": "pro"}}),
                  store, config=IdentityConfig(), now=NOW, realtime=realtime)
    assert [(c.segment, c.change, c.run_id) for c in published] == [("pro", "entered", "rt:m1")]
    unify_records(_records({"messageId": "m2", "type": "identify", "userId": "u1", "traits": {"plan": "free"}}),
                  store, config=IdentityConfig(), now=NOW, realtime=realtime)
    assert [c.change for c in published] == ["entered", "exited"]
    assert membership.members("pro") == {}


def test_a_redelivered_batch_announces_nothing_twice() -> None:
    store, membership, published, realtime = _setup()
    batch = _records({"messageId": "m1", "type": "identify", "userId": "u1", "traits": {"plan": "pro"}})
    for _ in range(2):
        unify_records(batch, store, config=IdentityConfig(), now=NOW, realtime=realtime)
    assert len(published) == 1 and set(membership.members("pro")) == {published[0].profile_id}


def test_segments_with_event_conditions_are_left_to_the_scheduled_run() -> None:
    store, _, published, realtime = _setup()
    unify_records(_records({"messageId": "m1", "type": "track", "userId": "u1", "event": "Order Completed"}),
                  store, config=IdentityConfig(), now=NOW, realtime=realtime)
    assert all(c.segment != "buyers" for c in published)


def test_a_failing_membership_store_makes_the_applied_events_retry() -> None:
    store, membership, _, _ = _setup()

    def broken(_changes: list[MembershipChange]) -> None:
        from cdp.errors import StoreError

        raise StoreError("queue down")

    result = unify_records(_records({"messageId": "m1", "type": "identify", "userId": "u1", "traits": {"plan": "pro"}}),
                           store, config=IdentityConfig(), now=NOW,
                           realtime=RealtimeSegments([PRO], membership, broken))
    assert result.retry == ["1"]
    assert membership.members("pro") == {}
