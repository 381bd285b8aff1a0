"""Report numbers against independent counts: over the profiles, and over the generator's ground truth."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from cdp.adapters.duckdb import DuckDBEngine
from cdp.errors import InvalidJourney
from cdp.identity import resolve_batch
from cdp.identity.config import load_identity_config
from cdp.identity.refresh import refresh_lifecycle_stages
from cdp.identity.store import InMemoryIdentityStore
from cdp.jobs.report_job import compute_report, quarantine_counts, read_latest, write_report
from cdp.jobs.segment_job import write_snapshots
from cdp.lake.parquet import write_events
from cdp.reports import ReportRange
from cdp.reports.journey import load_journey, parse_journey
from cdp_infra.dataset import generate

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
CONFIG = load_identity_config(ROOT / "config" / "identity.yaml")
JOURNEY = load_journey(ROOT / "config" / "journey.yaml")


def build_lake(root: str):
    """A lake and profiles built from a generated dataset by the real unify and snapshot code."""
    dataset = generate(80, 2400, seed=3, now=NOW)
    store = InMemoryIdentityStore()
    valid = []
    for batch in sorted(dataset.batches, key=lambda b: min(e["timestamp"] for e in b)):
        good = [e for e in batch if "anonymousId" in e or "userId" in e]
        valid.extend(good)
        resolve_batch(good, store, config=CONFIG, now=NOW)
    refresh_lifecycle_stages(store, config=CONFIG, now=NOW)
    fs = pafs.LocalFileSystem()
    write_events(valid, fs, root, "batch-0")
    write_snapshots(store, fs, root)
    return root, fs, dataset, store, valid


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory):
    return build_lake(str(tmp_path_factory.mktemp("lake")))


def _report(lake, first: datetime, last: datetime, granularity: str = "week", journey=JOURNEY):
    root, fs, *_ = lake
    window = ReportRange(first.date(), last.date(), granularity)
    return compute_report(engine=DuckDBEngine(fs, root), window=window, journey=journey, now=NOW, run_id="r1",
                          quarantine=lambda w: quarantine_counts(fs, root, w))


def _live(store):
    return [p for p in store.scan_profiles() if not p.is_tombstone]


def test_funnel_counts_equal_a_direct_count_over_profiles(lake):
    report = _report(lake, NOW - timedelta(days=200), NOW)
    direct = Counter(p.lifecycle.stage for p in _live(lake[3]))
    assert {r["stage"]: r["people"] for r in report.tables["funnel"] if r["people"]} == dict(direct)


def test_transitions_sum_to_the_stage_changes_kept_on_profiles(lake):
    report = _report(lake, NOW - timedelta(days=400), NOW, "month")
    changes = sum(len(p.lifecycle.history) for p in _live(lake[3]))
    assert changes > 0
    assert sum(t["people"] for t in report.tables["transitions"]) == changes


def test_stages_at_the_end_equal_the_stages_now(lake):
    report = _report(lake, NOW - timedelta(days=200), NOW, "month")
    last = max(r["period"] for r in report.tables["stages_over_time"])
    at_end = {r["stage"]: r["people"] for r in report.tables["stages_over_time"] if r["period"] == last and r["people"]}
    assert at_end == dict(Counter(p.lifecycle.stage for p in _live(lake[3])))


def test_events_counted_equal_the_valid_events_sent(lake):
    report = _report(lake, NOW - timedelta(days=400), NOW)
    assert report.meta["events"] == len(lake[4]) == lake[2].events - lake[2].invalid


def test_journey_action_equals_the_people_who_ordered_in_the_range(lake):
    first = NOW - timedelta(days=20)
    report = _report(lake, first, NOW)
    buyers = {p.index for p in lake[2].persons if any(t.date() >= first.date() for t in p.orders)}
    action = next(r for r in report.tables["journey"] if r["stage"] == "action")
    advocacy = next((r for r in report.tables["journey"] if r["stage"] == "advocacy"), {"reached": 0})
    assert action["reached"] - advocacy["reached"] <= len(buyers) <= action["reached"]
    assert all(r["reached"] >= n["reached"] for r, n in zip(report.tables["journey"], report.tables["journey"][1:],
                                                             strict=False))


def test_each_cohort_is_all_active_in_its_first_week(lake):
    report = _report(lake, NOW - timedelta(days=200), NOW)
    week0 = [c for c in report.tables["cohorts"] if c["week"] == 0]
    assert week0 and all(c["people"] == c["size"] for c in week0)


def test_an_empty_range_gives_empty_tables_and_a_dashboard(lake, tmp_path):
    report = _report(lake, datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 1, 31, tzinfo=UTC), "day")
    assert report.meta["events"] == 0 and report.tables["transitions"] == [] and report.tables["cohorts"] == []
    assert len(report.tables["events_daily"]) == 31  # missing days listed with zero
    fs = pafs.LocalFileSystem()
    path = write_report(report, fs, str(tmp_path))
    html = Path(path).read_text()
    assert "No data in this range" in html and "<script" not in html
    assert read_latest(fs, str(tmp_path))["run_id"] == "r1"
    assert json.loads((tmp_path / "reports/run=r1/funnel.json").read_text()) == report.tables["funnel"]


def test_an_invalid_journey_map_is_shown_not_raised(lake):
    error = InvalidJourney("journey.yaml:3: stages: unknown stage 'awareness2'")
    report = _report(lake, NOW - timedelta(days=30), NOW, journey=error)
    assert report.meta["journey_error"].startswith("journey.yaml:3:")
    assert report.tables["funnel"]


@pytest.mark.parametrize(("text", "line"), [
    ("stages:\n  awareness:\n    - event: Page\n  awarenes:\n    - event: X\n", 4),
    ("stages:\n  ask:\n    - event: A\n      typo: 1\n", 4),
    ("stages:\n  ask:\n    - {event: A, type: page}\n", 3),
    ("stages:\n  ask: []\n", 2),
    ("stages:\n  ask:\n    - event: A\n      where: {path: []}\n", 4),
])
def test_journey_mistakes_name_the_file_and_line(text: str, line: int):
    with pytest.raises(InvalidJourney) as caught:
        parse_journey(text, "journey.yaml")
    assert caught.value.reason.startswith(f"journey.yaml:{line}:")


def test_the_shipped_journey_map_covers_the_five_stages():
    assert JOURNEY.stages == ("awareness", "attraction", "ask", "action", "advocacy")


def test_campaign_sends_and_outcomes_in_the_lake_are_counted_per_campaign(tmp_path):
    from cdp.campaigns.definition import load_campaigns

    root, fs = str(tmp_path), pafs.LocalFileSystem()
    sent_at = NOW - timedelta(days=3)

    def outcome(n: int, name: str, campaign: str) -> dict:
        stamp = (sent_at + timedelta(minutes=n)).isoformat().replace("+00:00", "Z")
        return {"type": "track", "event": name, "messageId": f"m{n}", "anonymousId": f"a{n % 3}",
                "timestamp": stamp, "receivedAt": stamp, "properties": {"campaign": campaign}}

    events = [outcome(1, "Email Sent", "loyalty-launch"), outcome(2, "Email Sent", "loyalty-launch"),
              outcome(3, "Email Delivered", "loyalty-launch"), outcome(4, "Email Bounced", "loyalty-launch"),
              outcome(5, "Unsubscribed", "loyalty-launch"), outcome(6, "Email Sent", "some-other-campaign")]
    write_events(events, fs, root, "outcomes")
    write_snapshots(InMemoryIdentityStore(), fs, root)
    campaigns = [c for c in load_campaigns(ROOT / "campaigns") if c.name == "loyalty-launch"]

    report = compute_report(engine=DuckDBEngine(fs, root), window=ReportRange((NOW - timedelta(days=7)).date(),
                            NOW.date(), "day"), journey=JOURNEY, now=NOW, run_id="r2", campaigns=campaigns)

    [row] = report.tables["campaigns"]
    assert (row["campaign"], row["sent"], row["delivered"], row["bounced"], row["unsubscribed"]) == (
        "loyalty-launch", 2, 1, 1, 1)
    assert row["conversion_event"] == "Order Completed" and row["conversions"] == 0
    html = Path(write_report(report, fs, root)).read_text()
    assert 'data-table="campaigns"' in html and 'data-label="loyalty-launch" data-value="2"' in html


def test_a_report_without_campaigns_has_an_empty_campaigns_table_and_a_labelled_chart(lake, tmp_path):
    report = _report(lake, NOW - timedelta(days=30), NOW)
    assert report.tables["campaigns"] == []
    html = Path(write_report(report, pafs.LocalFileSystem(), str(tmp_path))).read_text()
    assert "Emails sent per campaign" in html
