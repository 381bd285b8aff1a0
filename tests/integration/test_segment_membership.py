"""DynamoMembershipStore on the template's MembershipTable (moto)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from cdp.adapters.membership import DynamoMembershipStore
from cdp.errors import StoreError
from cdp.segments.definition import parse_segment
from cdp.segments.engines import QueryResult
from cdp.segments.membership import Member, MembershipChange
from cdp.segments.run import run_segment


@pytest.fixture
def store(stack_settings) -> DynamoMembershipStore:
    return DynamoMembershipStore(stack_settings)


def test_members_written_are_read_back_with_their_entry_run(store: DynamoMembershipStore):
    store.apply(
        "vip", [Member("p1", "r1", "2024-03-31T12:00:00Z"), Member("p2", "r1", "2024-03-31T12:00:00Z")], []
    )

    assert store.members("vip") == {
        "p1": Member("p1", "r1", "2024-03-31T12:00:00Z"),
        "p2": Member("p2", "r1", "2024-03-31T12:00:00Z"),
    }


def test_exited_members_are_removed(store: DynamoMembershipStore):
    store.apply("vip", [Member("p1", "r1", "t"), Member("p2", "r1", "t")], [])

    store.apply("vip", [], ["p1"])

    assert set(store.members("vip")) == {"p2"}


def test_more_members_than_one_batch_and_one_page_are_all_kept(store: DynamoMembershipStore):
    many = [Member(f"p{i:04d}-" + "x" * 200, "r1", "t") for i in range(1200)]

    store.apply("big", many, [])

    assert len(store.members("big")) == 1200


def test_segments_do_not_see_each_other_nor_the_run_records(store: DynamoMembershipStore):
    store.apply("a", [Member("p1", "r1", "t")], [])
    store.apply("b", [Member("p2", "r1", "t")], [])
    store.record_run("a", "r1", {"segment": "a", "run_id": "r1", "at": "t"})

    assert set(store.members("a")) == {"p1"}
    assert set(store.members("b")) == {"p2"}


def test_a_recorded_run_is_found_by_its_id_and_as_the_last_run(store: DynamoMembershipStore):
    report = {"segment": "a", "run_id": "r7", "at": "2024-03-31T12:00:00Z", "members": 3}

    store.record_run("a", "r7", report)

    assert store.completed_run("a", "r7") == report
    assert store.completed_run("a", "r8") is None
    assert store.last_run("a") == report
    assert store.last_run("b") is None


def test_a_run_over_dynamodb_is_idempotent_by_run_id(store: DynamoMembershipStore):
    class Engine:
        dialect = "duckdb"

        def run(self, sql: str) -> QueryResult:
            return QueryResult([{"profile_id": "p1"}], 10)

    defn = parse_segment("name: leads\ncondition: {lifecycle: lead}\n")
    sent: list[MembershipChange] = []
    now = datetime(2024, 3, 31, tzinfo=UTC)

    first = run_segment(defn, engine=Engine(), membership=store, publish=sent.extend, run_id="r1", now=now)
    second = run_segment(defn, engine=Engine(), membership=store, publish=sent.extend, run_id="r1", now=now)

    assert [c.profile_id for c in sent] == ["p1"]
    assert second.replayed and second.entered == first.entered == 1


def test_a_missing_table_raises_a_store_error(stack_settings):
    missing = DynamoMembershipStore(replace(stack_settings, membership_table="no-such-table"))

    with pytest.raises(StoreError):
        missing.members("a")
    with pytest.raises(StoreError):
        missing.apply("a", [Member("p1", "r1", "t")], [])


def test_one_membership_is_read_by_profile(store: DynamoMembershipStore):
    store.apply("vip", [Member("p1", "rt:m1", "t")], [])

    assert store.member("vip", "p1") == Member("p1", "rt:m1", "t")
    assert store.member("vip", "p2") is None


def test_memberships_are_read_by_key_across_batches_of_a_hundred(store: DynamoMembershipStore):
    store.apply("vip", [Member(f"p{i:03d}", "r1", "t") for i in range(150)], [])
    store.apply("new", [Member("p000", "r2", "t2")], [])
    keys = [("vip", f"p{i:03d}") for i in range(0, 150, 2)] + [("new", "p000"), ("new", "p001"), ("gone", "x")]

    found = store.members_of(keys)

    assert set(found) == {("vip", f"p{i:03d}") for i in range(0, 150, 2)} | {("new", "p000")}
    assert found[("new", "p000")] == Member("p000", "r2", "t2")


def test_a_profile_entered_and_exited_in_one_apply_ends_up_out(store: DynamoMembershipStore):
    store.apply("vip", [Member("p1", "r1", "t"), Member("p2", "r1", "t")], ["p1"])

    assert set(store.members("vip")) == {"p2"}


def test_an_unannounced_member_is_read_back_unannounced_by_every_read(store: DynamoMembershipStore):
    pending = Member("p1", "rt:m1", "t", announced=False)

    store.apply("vip", [pending, Member("p2", "r1", "t")], [])

    assert store.members("vip")["p1"] == pending and store.member("vip", "p1") == pending
    assert store.members_of([("vip", "p1"), ("vip", "p2")]) == {("vip", "p1"): pending,
                                                                ("vip", "p2"): Member("p2", "r1", "t")}


def test_a_run_on_dynamodb_announces_a_pending_entry_with_its_stored_run_id(store: DynamoMembershipStore):
    store.apply("rb", [Member("p1", "r1", "2024-03-31T12:00:00Z", announced=False)], [])

    class Engine:
        dialect = "duckdb"

        def run(self, sql):
            return QueryResult([{"profile_id": "p1"}], 0)

    sent: list[MembershipChange] = []
    run_segment(parse_segment("name: rb\ncondition: {trait: plan, eq: pro}\n"), engine=Engine(), membership=store,
                publish=sent.extend, run_id="r2", now=datetime(2024, 4, 1, tzinfo=UTC))

    assert [c.dedupe_key for c in sent] == ["rb|p1|entered|r1"]
    assert store.member("rb", "p1") == Member("p1", "r1", "2024-03-31T12:00:00Z")
