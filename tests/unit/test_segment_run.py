"""A segment run: diff, publish first, store after; idempotent by run id; a failed query changes nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from cdp.errors import QueryFailed
from cdp.segments.definition import parse_segment
from cdp.segments.engines import QueryResult
from cdp.segments.membership import Change, InMemoryMembershipStore, Member, MembershipChange
from cdp.segments.run import SegmentRunReport, run_segment

NOW = datetime(2024, 3, 31, 12, 0, tzinfo=UTC)
DEFN = parse_segment("name: rb\ncondition: {event: Order Completed, within_days: 30, min_count: 2}\n")


class FakeEngine:
    """Answers every query with the profile ids it is told; records the SQL it ran."""

    dialect = "duckdb"

    def __init__(self, *members: str, error: Exception | None = None, bytes_scanned: int = 1234) -> None:
        self.members = list(members)
        self.error = error
        self.bytes_scanned = bytes_scanned
        self.queries: list[str] = []

    def run(self, sql: str) -> QueryResult:
        self.queries.append(sql)
        if self.error:
            raise self.error
        return QueryResult([{"profile_id": p} for p in self.members], self.bytes_scanned)


class Outbox:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[MembershipChange] = []
        self.fail = fail

    def __call__(self, changes: list[MembershipChange]) -> None:
        if self.fail:
            raise ConnectionError("queue unavailable")
        self.sent.extend(changes)


def run(engine, store, outbox, run_id="r1", now=NOW) -> SegmentRunReport:
    return run_segment(DEFN, engine=engine, membership=store, publish=outbox, run_id=run_id, now=now)


def test_a_first_run_publishes_every_member_as_entered():
    store, outbox = InMemoryMembershipStore(), Outbox()

    report = run(FakeEngine("p1", "p2"), store, outbox)

    assert [(c.profile_id, c.change, c.run_id) for c in outbox.sent] == [
        ("p1", "entered", "r1"),
        ("p2", "entered", "r1"),
    ]
    assert (report.members, report.entered, report.exited, report.bytes_scanned) == (2, 2, 0, 1234)


def test_a_run_stores_members_with_the_run_they_entered_at():
    store = InMemoryMembershipStore()

    run(FakeEngine("p1"), store, Outbox(), run_id="r1")
    run(FakeEngine("p1", "p2"), store, Outbox(), run_id="r2")

    assert {p: m.entered_run for p, m in store.members("rb").items()} == {"p1": "r1", "p2": "r2"}


def test_a_later_run_publishes_only_who_entered_and_who_exited():
    store, outbox = InMemoryMembershipStore(), Outbox()
    run(FakeEngine("p1", "p2"), store, Outbox(), run_id="r1")

    report = run(FakeEngine("p2", "p3"), store, outbox, run_id="r2")

    assert [(c.profile_id, c.change) for c in outbox.sent] == [("p3", "entered"), ("p1", "exited")]
    assert set(store.members("rb")) == {"p2", "p3"}
    assert (report.entered, report.exited, report.members) == (1, 1, 2)


def test_an_unchanged_segment_publishes_nothing():
    store, outbox = InMemoryMembershipStore(), Outbox()
    run(FakeEngine("p1"), store, Outbox(), run_id="r1")

    run(FakeEngine("p1"), store, outbox, run_id="r2")

    assert outbox.sent == []


def test_a_completed_run_retried_with_its_id_publishes_nothing_and_returns_its_report():
    store, outbox = InMemoryMembershipStore(), Outbox()
    first = run(FakeEngine("p1"), store, Outbox(), run_id="r1")
    engine = FakeEngine("p1", "p2")

    again = run(engine, store, outbox, run_id="r1")

    assert outbox.sent == []
    assert engine.queries == []
    assert again == SegmentRunReport(**{**first.to_dict(), "replayed": True})


def test_a_run_that_failed_to_publish_keeps_its_entries_unannounced_and_its_exits_in_place():
    store = InMemoryMembershipStore()
    run(FakeEngine("p1"), store, Outbox(), run_id="r1")

    with pytest.raises(ConnectionError):
        run(FakeEngine("p2"), store, Outbox(fail=True), run_id="r2")

    assert {p: (m.entered_run, m.announced) for p, m in store.members("rb").items()} == {
        "p1": ("r1", True), "p2": ("r2", False)}
    assert store.completed_run("rb", "r2") is None


def test_the_next_run_announces_an_unannounced_entry_with_its_stored_run_id():
    store = InMemoryMembershipStore()
    with pytest.raises(ConnectionError):
        run(FakeEngine("p1"), store, Outbox(fail=True), run_id="r1")
    outbox = Outbox()

    report = run(FakeEngine("p1"), store, outbox, run_id="r2")

    assert [c.dedupe_key for c in outbox.sent] == ["rb|p1|entered|r1"]
    assert store.members("rb")["p1"].announced and report.entered == 1


def test_a_run_after_the_entries_were_announced_announces_nothing():
    store = InMemoryMembershipStore()
    with pytest.raises(ConnectionError):
        run(FakeEngine("p1"), store, Outbox(fail=True), run_id="r1")
    run(FakeEngine("p1"), store, Outbox(), run_id="r2")
    outbox = Outbox()

    run(FakeEngine("p1"), store, outbox, run_id="r3")

    assert outbox.sent == []


def test_a_retry_after_a_crash_republishes_the_same_changes_with_the_same_ids():
    store = InMemoryMembershipStore()
    run(FakeEngine("p1"), store, Outbox(), run_id="r1")
    lost = Outbox(fail=True)
    with pytest.raises(ConnectionError):
        run(FakeEngine("p2"), store, lost, run_id="r2")
    outbox = Outbox()

    run(FakeEngine("p2"), store, outbox, run_id="r2")

    assert [c.dedupe_key for c in outbox.sent] == ["rb|p2|entered|r2", "rb|p1|exited|r2"]


def test_a_failed_query_publishes_nothing_and_keeps_the_membership():
    store, outbox = InMemoryMembershipStore(), Outbox()
    run(FakeEngine("p1"), store, Outbox(), run_id="r1")

    with pytest.raises(QueryFailed):
        run(FakeEngine(error=QueryFailed("scan limit exceeded")), store, outbox, run_id="r2")

    assert outbox.sent == []
    assert set(store.members("rb")) == {"p1"}
    assert store.completed_run("rb", "r2") is None


def test_the_engine_receives_sql_in_its_dialect():
    engine = FakeEngine()
    engine.dialect = "trino"

    run(engine, InMemoryMembershipStore(), Outbox())

    assert "CAST('2024-03-31 12:00:00.000' AS TIMESTAMP)" in engine.queries[0]


def test_changes_carry_the_run_time_in_utc():
    outbox = Outbox()

    run(FakeEngine("p1"), InMemoryMembershipStore(), outbox, now=datetime(2024, 3, 31, 12, 0))

    assert outbox.sent[0].at == "2024-03-31T12:00:00.000Z"


def test_a_change_round_trips_through_a_dict():
    change = MembershipChange("rb", "p1", "entered", "r1", "2024-03-31T12:00:00Z")

    assert MembershipChange.from_dict(change.to_dict()) == change


def test_a_queued_message_reads_as_a_typed_change_and_writes_back_byte_for_byte():
    # Given a message as the segment job has always put it on the activation queue
    wire = '{"segment": "rb", "profile_id": "p1", "change": "exited", "run_id": "r1", "at": "2024-03-31T12:00:00Z"}'

    # When it is read and written again
    change = MembershipChange.from_dict(json.loads(wire))

    # Then the change is the enum member and the message is unchanged
    assert change.change is Change.EXITED
    assert json.dumps(change.to_dict()) == wire


def test_a_change_of_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="entered"):
        MembershipChange.from_dict(
            {"segment": "s", "profile_id": "p", "change": "moved", "run_id": "r", "at": "t"}
        )


def test_the_last_run_is_the_latest_completed_one():
    store = InMemoryMembershipStore()
    run(FakeEngine("p1"), store, Outbox(), run_id="r1", now=datetime(2024, 3, 30, tzinfo=UTC))
    run(FakeEngine("p1"), store, Outbox(), run_id="r2", now=datetime(2024, 3, 31, tzinfo=UTC))

    assert store.last_run("rb")["run_id"] == "r2"


def test_in_memory_members_are_copies():
    store = InMemoryMembershipStore()
    store.apply("s", [Member("p1", "r1", "t")], [])

    store.members("s").clear()

    assert set(store.members("s")) == {"p1"}


# ---------------------------------------------------------------- the scheduled job's retries
OTHER = parse_segment("name: browsers\ncondition: {event: Product Viewed, within_days: 30}\n")


class FlakyEngine(FakeEngine):
    """Fails its queries numbered in ``failing`` (from 0) with ``error``, answers the others."""

    def __init__(self, *members: str, failing: set[int], error: Exception) -> None:
        super().__init__(*members)
        self.failing, self.failure = failing, error

    def run(self, sql: str) -> QueryResult:
        self.error = self.failure if len(self.queries) in self.failing else None
        return super().run(sql)


def _job(engine, store, outbox, run_id="tick-1"):
    from cdp.jobs.segment_job import run_segment_job

    return run_segment_job([OTHER, DEFN], engine=engine, membership=store, publish=outbox, run_id=run_id, now=NOW)


def test_a_segment_failed_for_a_reason_that_may_pass_makes_the_job_ask_for_a_retry():
    from cdp.errors import SegmentsIncomplete
    from cdp.jobs.segment_job import raise_if_incomplete

    report = _job(FlakyEngine("p1", failing={1}, error=QueryFailed("throttled", retryable=True)),
                  InMemoryMembershipStore(), Outbox())

    assert report.retryable == ["rb"] and list(report.failures) == ["rb"]
    with pytest.raises(SegmentsIncomplete) as caught:
        raise_if_incomplete(report)
    assert caught.value.details["segments"] == ["rb"]


def test_a_segment_that_cannot_pass_is_reported_and_the_job_is_not_retried():
    from cdp.jobs.segment_job import raise_if_incomplete

    report = _job(FlakyEngine("p1", failing={1}, error=QueryFailed("bad column", retryable=False)),
                  InMemoryMembershipStore(), Outbox())

    assert list(report.failures) == ["rb"] and report.retryable == []
    raise_if_incomplete(report)  # nothing to retry: the next tick tries again, the failure is in the metrics


def test_the_retried_tick_runs_only_the_failed_segment_and_announces_each_entry_once():
    store, outbox = InMemoryMembershipStore(), Outbox()
    engine = FlakyEngine("p1", failing={1}, error=QueryFailed("throttled", retryable=True))

    _job(engine, store, outbox)
    retry = _job(engine, store, outbox)

    assert len(engine.queries) == 3  # browsers, rb (failed), rb again: browsers replays its record
    assert [r.replayed for r in retry.segments] == [True, False] and retry.retryable == []
    assert sorted((c.segment, c.profile_id) for c in outbox.sent) == [("browsers", "p1"), ("rb", "p1")]
