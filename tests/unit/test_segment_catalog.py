"""The catalog (built-in lifecycle segments + repository files), previews and scheduled ticks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cdp.errors import InvalidSegment, NotFound, QueryFailed
from cdp.segments.catalog import all_segments, find_segment, lifecycle_segments
from cdp.segments.definition import LifecycleCondition, parse_segment
from cdp.segments.engines import QueryResult
from cdp.segments.membership import InMemoryMembershipStore, MembershipChange
from cdp.segments.run import preview_segment, run_due_segments

NOW = datetime(2024, 3, 31, 12, 0, tzinfo=UTC)


class Engine:
    dialect = "duckdb"

    def __init__(self, members=(), fail_on: str | None = None):
        self.members = list(members)
        self.fail_on = fail_on
        self.runs = 0

    def run(self, sql: str) -> QueryResult:
        self.runs += 1
        if self.fail_on and self.fail_on in sql:
            raise QueryFailed("boom")
        return QueryResult([{"profile_id": p} for p in self.members], 99)


def test_there_is_one_built_in_segment_per_lifecycle_stage():
    names = {d.name: d.condition for d in lifecycle_segments()}

    assert names["lifecycle-new-visitor"] == LifecycleCondition(("new_visitor",))
    assert set(names) == {
        "lifecycle-new-visitor",
        "lifecycle-returning-visitor",
        "lifecycle-lead",
        "lifecycle-prospect",
        "lifecycle-new-customer",
        "lifecycle-engaged-customer",
        "lifecycle-churned",
    }


def test_the_catalog_holds_built_ins_and_files(tmp_path: Path):
    (tmp_path / "vip.yaml").write_text("name: vip\ncondition: {trait: plan, eq: pro}\n")

    names = [d.name for d in all_segments(tmp_path)]

    assert "vip" in names and "lifecycle-lead" in names


def test_a_file_may_not_take_a_built_in_name(tmp_path: Path):
    (tmp_path / "x.yaml").write_text("name: lifecycle-lead\ncondition: {trait: plan, eq: pro}\n")

    with pytest.raises(InvalidSegment, match="built-in"):
        all_segments(tmp_path)


def test_an_unknown_segment_name_is_not_found():
    with pytest.raises(NotFound):
        find_segment(lifecycle_segments(), "vip")


def test_a_preview_gives_count_sorted_sample_and_bytes():
    defn = parse_segment("name: x\ncondition: {lifecycle: lead}\n")

    preview = preview_segment(defn, Engine(["p3", "p1", "p2"]), NOW, sample_size=2)

    assert (preview.count, preview.sample, preview.bytes_scanned) == (3, ["p1", "p2"], 99)
    assert "lifecycle_stage" in preview.sql


def test_a_preview_stores_and_publishes_nothing():
    store = InMemoryMembershipStore()
    defn = parse_segment("name: x\ncondition: {lifecycle: lead}\n")

    preview_segment(defn, Engine(["p1"]), NOW)

    assert store.members("x") == {}


def test_a_tick_runs_only_the_segments_that_are_due():
    hourly = parse_segment("name: hourly\nschedule: rate(1 hour)\ncondition: {lifecycle: lead}\n")
    always = parse_segment("name: always\ncondition: {lifecycle: churned}\n")
    store = InMemoryMembershipStore()
    publish = [].extend
    run_due_segments(
        [hourly, always], engine=Engine(), membership=store, publish=publish, run_id="t1", now=NOW
    )

    later = NOW + timedelta(minutes=15)
    summary = run_due_segments(
        [hourly, always], engine=Engine(), membership=store, publish=publish, run_id="t2", now=later
    )

    assert [r.segment for r in summary.reports] == ["always"]
    assert summary.skipped == ["hourly"]


def test_a_failing_segment_does_not_stop_the_others():
    bad = parse_segment("name: bad\ncondition: {lifecycle: churned}\n")
    good = parse_segment("name: good\ncondition: {lifecycle: lead}\n")
    sent: list[MembershipChange] = []

    summary = run_due_segments(
        [bad, good],
        engine=Engine(["p1"], fail_on="churned"),
        membership=InMemoryMembershipStore(),
        publish=sent.extend,
        run_id="t1",
        now=NOW,
    )

    assert set(summary.failures) == {"bad"}
    assert [r.segment for r in summary.reports] == ["good"]
    assert [c.segment for c in sent] == ["good"]


def test_a_retried_tick_replays_completed_segments_even_if_not_due():
    hourly = parse_segment("name: hourly\nschedule: rate(1 hour)\ncondition: {lifecycle: lead}\n")
    store = InMemoryMembershipStore()
    run_due_segments(
        [hourly], engine=Engine(["p1"]), membership=store, publish=[].extend, run_id="t1", now=NOW
    )
    engine = Engine(["p1"])

    summary = run_due_segments(
        [hourly], engine=engine, membership=store, publish=[].extend, run_id="t1", now=NOW
    )

    assert summary.reports[0].replayed
    assert engine.runs == 0
