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
    assert [m.announced for m in membership.members("pro").values()] == [False]


class FlakyMembership(InMemoryMembershipStore):
    """Fails the chosen write calls (1 = the first ``apply``), like a store that times out."""

    def __init__(self, *failing_writes: int) -> None:
        super().__init__()
        self.failing = set(failing_writes)
        self.writes = 0

    def apply(self, segment, entered, exited) -> None:  # type: ignore[no-untyped-def]
        self.writes += 1
        if self.writes in self.failing:
            from cdp.errors import StoreError

            raise StoreError("membership table timed out")
        super().apply(segment, entered, exited)


class CrashingOnce:
    """A publisher whose first call dies before anything leaves (the process crashed)."""

    def __init__(self) -> None:
        self.calls = 0
        self.published: list[MembershipChange] = []

    def __call__(self, changes: list[MembershipChange]) -> None:
        self.calls += 1
        if self.calls == 1:
            from cdp.errors import StoreError

            raise StoreError("crashed before publishing")
        self.published.extend(changes)


PRO_EVENT = {"messageId": "m1", "type": "identify", "userId": "u1", "traits": {"plan": "pro"}}


def _scheduled_run(membership: InMemoryMembershipStore, profile_ids: list[str]) -> list[MembershipChange]:
    from cdp.segments.engines import QueryResult
    from cdp.segments.run import run_segment

    class Engine:
        dialect = "duckdb"

        def run(self, sql: str) -> QueryResult:
            return QueryResult([{"profile_id": p} for p in profile_ids], 0)

    sent: list[MembershipChange] = []
    run_segment(PRO, engine=Engine(), membership=membership, publish=sent.extend, run_id="tick-1", now=NOW)
    return sent


def test_published_but_not_stored_then_redelivered_announces_one_entry_under_one_run_id() -> None:
    store, published = InMemoryIdentityStore(), []
    membership = FlakyMembership(2)  # 1: the outbox write, 2: marking it announced after publishing
    realtime = RealtimeSegments([PRO], membership, published.extend)
    batch = _records(PRO_EVENT)

    first = unify_records(batch, store, config=IdentityConfig(), now=NOW, realtime=realtime)
    again = unify_records(batch, store, config=IdentityConfig(), now=NOW, realtime=realtime)

    assert first.retry == ["1"] and again.retry == [] and again.outcome.duplicates == ["m1"]
    assert {c.dedupe_key for c in published} == {f"pro|{published[0].profile_id}|entered|rt:m1"}
    assert all(m.announced for m in membership.members("pro").values())


def test_a_scheduled_run_after_the_redelivery_announces_nothing_new() -> None:
    store, published = InMemoryIdentityStore(), []
    membership = FlakyMembership(2)
    realtime = RealtimeSegments([PRO], membership, published.extend)
    for _ in range(2):
        unify_records(_records(PRO_EVENT), store, config=IdentityConfig(), now=NOW, realtime=realtime)

    assert _scheduled_run(membership, [published[0].profile_id]) == []


def test_a_scheduled_run_announces_an_entry_left_unannounced_with_its_realtime_run_id() -> None:
    store, published = InMemoryIdentityStore(), []
    membership = FlakyMembership(2)
    unify_records(_records(PRO_EVENT), store, config=IdentityConfig(), now=NOW,
                  realtime=RealtimeSegments([PRO], membership, published.extend))

    again = _scheduled_run(membership, [published[0].profile_id])

    assert [c.dedupe_key for c in again] == [published[0].dedupe_key]


def test_a_crash_after_storing_before_publishing_is_published_once_by_the_next_evaluation() -> None:
    store, membership, publisher = InMemoryIdentityStore(), InMemoryMembershipStore(), CrashingOnce()
    realtime = RealtimeSegments([PRO], membership, publisher)
    batch = _records(PRO_EVENT)

    unify_records(batch, store, config=IdentityConfig(), now=NOW, realtime=realtime)
    unify_records(batch, store, config=IdentityConfig(), now=NOW, realtime=realtime)
    unify_records(batch, store, config=IdentityConfig(), now=NOW, realtime=realtime)

    assert [(c.change, c.run_id) for c in publisher.published] == [("entered", "rt:m1")]


def test_a_later_event_of_the_profile_announces_a_pending_entry_with_the_first_run_id() -> None:
    store, membership, publisher = InMemoryIdentityStore(), InMemoryMembershipStore(), CrashingOnce()
    realtime = RealtimeSegments([PRO], membership, publisher)
    unify_records(_records(PRO_EVENT), store, config=IdentityConfig(), now=NOW, realtime=realtime)

    unify_records(_records({**PRO_EVENT, "messageId": "m2", "traits": {"plan": "pro", "seats": 3}}),
                  store, config=IdentityConfig(), now=NOW, realtime=realtime)

    assert [c.run_id for c in publisher.published] == ["rt:m1"]


def _consent_setup() -> tuple[InMemoryIdentityStore, list[list[str]], RealtimeSegments]:
    signals: list[list[str]] = []
    return InMemoryIdentityStore(), signals, RealtimeSegments([PRO], InMemoryMembershipStore(), lambda _: None,
                                                              consent_signal=signals.append)


def _consent_event(mid: str, **preferences: bool) -> dict:
    return {"messageId": mid, "type": "track", "userId": "u1", "event": "Page Viewed",
            "context": {"consent": {"categoryPreferences": preferences}}}


def test_an_event_stating_ads_or_marketing_consent_signals_the_ad_audiences() -> None:
    store, signals, realtime = _consent_setup()
    unify_records(_records(_consent_event("m1", ads=False), _consent_event("m2", analytics=True)),
                  store, config=IdentityConfig(), now=NOW, realtime=realtime)
    (people,) = signals
    assert people == [store.get_profiles(people)[people[0]].profile_id]
    unify_records(_records(_consent_event("m3", analytics=False)), store, config=IdentityConfig(), now=NOW,
                  realtime=realtime)
    assert len(signals) == 1  # analytics alone changes no audience
    unify_records(_records(_consent_event("m4", marketing=False)), store, config=IdentityConfig(), now=NOW,
                  realtime=realtime)
    assert len(signals) == 2


def test_a_redelivery_signals_again_since_the_first_attempt_may_have_died_before_the_signal() -> None:
    store, signals, realtime = _consent_setup()
    batch = _records(_consent_event("m1", ads=True))
    for _ in range(2):
        unify_records(batch, store, config=IdentityConfig(), now=NOW, realtime=realtime)
    assert len(signals) == 2 and signals[0] == signals[1]


def test_a_signal_that_cannot_be_sent_makes_the_records_retry() -> None:
    from cdp.errors import StoreError

    def down(_people: list[str]) -> None:
        raise StoreError("queue down")

    realtime = RealtimeSegments([PRO], InMemoryMembershipStore(), lambda _: None, consent_signal=down)
    result = unify_records(_records(_consent_event("m1", ads=False)), InMemoryIdentityStore(), config=IdentityConfig(),
                           now=NOW, realtime=realtime)
    assert result.retry == ["1"]
