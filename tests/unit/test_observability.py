"""Domain reports become the business metrics the template's alarms and dashboard read."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from cdp.activation import ActivationReport
from cdp.collect.ingest import IngestResult, Rejection
from cdp.errors import EventsRejected, MalformedRequest, WriteKeyRejected
from cdp.identity.resolve import BatchOutcome
from cdp.identity.store import MergeLogEntry
from cdp.jobs.unify_job import UnifyResult
from cdp.observability import (
    CATALOGUE,
    DETAIL_PROPERTIES,
    metrics,
    record_activation,
    record_ingest,
    record_ingest_error,
    record_segment_job,
    record_unify,
)
from cdp.segments.membership import MembershipChange
from cdp_infra import runtime
from cdp_infra.runtime import MetricsRecorder


@pytest.fixture
def emitted(capsys: pytest.CaptureFixture[str]) -> Iterator[callable]:  # type: ignore[valid-type]
    """Flush what was recorded and read it back as CloudWatch would sum it (name{dim=value} -> sum)."""

    def read() -> dict[str, float]:
        metrics.flush_metrics()
        recorder = MetricsRecorder()
        for line in capsys.readouterr().out.splitlines():
            blob = json.loads(line)
            assert blob["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "CDPTest"
            assert blob["service"]
            recorder.record("fn", blob)
        return recorder.snapshot().get("fn", {})

    yield read


def _change(segment: str, change: str = "entered") -> MembershipChange:
    return MembershipChange(segment=segment, profile_id="p1", change=change, run_id="r1",  # type: ignore[arg-type]
                            at="2026-01-01T00:00:00Z")


def test_an_ingest_result_counts_accepted_quarantined_and_rejected_by_reason(emitted) -> None:
    record_ingest(IngestResult(accepted=3, rejected=(Rejection(1, "missing_event"), Rejection(4, "missing_event"),
                                                     Rejection(5, "invalid_type")), quarantined=3))
    assert emitted() == {"EventsAccepted": 3, "EventsQuarantined": 3, "EventsRejected{reason=invalid_type}": 1,
                         "EventsRejected{reason=missing_event}": 2}


def test_a_refused_write_key_counts_only_as_write_key_rejected_by_reason(emitted) -> None:
    record_ingest_error(WriteKeyRejected("unknown_write_key"))
    assert emitted() == {"WriteKeyRejected{reason=unknown_write_key}": 1}


def test_a_request_whose_events_all_failed_counts_the_request_and_each_event(emitted) -> None:
    record_ingest_error(EventsRejected("all_events_rejected", rejected=[{"index": 0, "reason": "missing_event"}],
                                       quarantined=1))
    assert emitted() == {"EventsAccepted": 0, "EventsQuarantined": 1, "EventsRejected{reason=missing_event}": 1,
                         "RequestsRejected{reason=all_events_rejected}": 1}


def test_an_unreadable_body_of_an_unknown_sender_counts_nothing_quarantined(emitted) -> None:
    record_ingest_error(MalformedRequest("invalid_json"))
    assert emitted()["EventsQuarantined"] == 0


def test_a_unify_result_counts_profiles_created_absorbed_refusals_by_rule_and_segment_changes(emitted) -> None:
    outcome = BatchOutcome(applied=["m1", "m2"], rejected={"m3": "no_usable_identifier"}, created=["p9"], log=[
        MergeLogEntry("p1", "merge", "t", "m1", "shared_identifier", (), ("p2", "p3")),
        MergeLogEntry("p1", "refused", "t", "m2", "limit_email", ("email:x",)),
        MergeLogEntry("p1", "link", "t", "m2", "same_event", ("user_id:1",)),
    ])
    record_unify(UnifyResult(outcome=outcome, changes=[_change("vip"), _change("vip"), _change("new", "exited")],
                             retry=["7"]))
    assert emitted() == {"EventsUnified": 2, "UnifyRetries": 1, "ProfilesCreated": 1, "ProfilesMerged": 2,
                         "EventsUnresolvable{reason=no_usable_identifier}": 1, "MergesRefused{rule=limit_email}": 1,
                         "SegmentEntries{segment=vip}": 2, "SegmentExits{segment=new}": 1,
                         "CampaignTriggers": 0, "CampaignTriggersStale": 0}


def test_triggered_decisions_count_sends_as_emails_skips_by_reason_and_waits(emitted) -> None:
    from datetime import UTC, datetime

    from cdp.campaigns.send import CampaignReport
    from cdp.observability import record_triggered

    report = CampaignReport(sent=["k1"], duplicates=["k2"], skipped={"k3": "cancelled_unless"},
                            deferred={"k4": datetime(2026, 11, 30, tzinfo=UTC)})
    record_triggered(report)
    assert emitted() == {"EmailsSent": 1, "TriggeredSkipped{reason=cancelled_unless}": 1,
                         "TriggeredSkipped{reason=duplicate}": 1, "TriggeredWaiting": 1}


def test_a_segment_job_counts_entries_exits_and_failures_per_segment(emitted) -> None:
    from cdp.jobs.segment_job import SegmentJobReport
    from cdp.segments.run import SegmentRunReport

    report = SegmentJobReport(run_id="r", segments=[SegmentRunReport("vip", "r", "t", 10, 4, 0, 0)],
                              failures={"broken": "invalid_segment: x"})
    record_segment_job(report)
    assert emitted() == {"SegmentsRun": 1, "SegmentEntries{segment=vip}": 4, "SegmentRunFailures{segment=broken}": 1}


def test_entries_and_exits_per_segment_are_one_series_each_with_the_segment_in_the_line(capsys) -> None:
    # Given a unify batch that entered two segments
    record_unify(UnifyResult(outcome=BatchOutcome(), changes=[_change("vip"), _change("new")]))
    metrics.flush_metrics()
    # When the EMF lines are read as CloudWatch reads them
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    entries = [b for b in lines if "SegmentEntries" in b]
    # Then each line's only dimension is the service, and the segment is a property of the line
    assert sorted(b["segment"] for b in entries) == ["new", "vip"]
    assert all(b["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]] for b in entries)


def test_the_local_metrics_recorder_knows_the_properties_counts_are_broken_down_by() -> None:
    assert runtime.DETAIL_PROPERTIES == DETAIL_PROPERTIES
    assert {spec.detail for spec in CATALOGUE.values() if spec.detail} <= set(DETAIL_PROPERTIES)


def test_an_activation_batch_counts_sent_skipped_by_reason_duplicates_and_failures(emitted) -> None:
    report = ActivationReport(sent=["k1"], duplicates=["k2"], skipped={"k3": "no_consent", "k4": "exited"})
    record_activation(report, failures=2)
    assert emitted() == {"EmailsSent": 1, "ActivationFailures": 2, "EmailsSkipped{reason=duplicate}": 1,
                         "EmailsSkipped{reason=exited}": 1, "EmailsSkipped{reason=no_consent}": 1}


def test_every_catalogued_metric_names_its_emitter_and_a_low_cardinality_dimension() -> None:
    for spec in CATALOGUE.values():
        assert spec.emitted_by.endswith("Function") and spec.meaning
        assert spec.dimension in (None, "reason", "rule", "segment", "destination", ("campaign", "outcome"))


def test_the_recorder_sums_metric_sets_per_function_and_dimension() -> None:
    recorder = MetricsRecorder()
    blob = {"_aws": {"CloudWatchMetrics": [{"Namespace": "N", "Dimensions": [["reason", "service"]],
                                            "Metrics": [{"Name": "EventsRejected", "Unit": "Count"}]}]},
            "reason": "x", "service": "cdp", "EventsRejected": [1.0, 2.0]}
    recorder.record("CollectFunction", blob)
    recorder.record("CollectFunction", blob)
    assert recorder.snapshot() == {"CollectFunction": {"EventsRejected{reason=x}": 6.0}}
    assert recorder.totals() == {"EventsRejected": 6.0}


def test_campaign_messages_are_counted_per_campaign_and_outcome(emitted) -> None:
    from datetime import UTC, datetime

    from cdp.campaigns.send import CampaignReport
    from cdp.observability import record_campaigns

    report = CampaignReport(sent=["campaign#digest#t1#p1"], duplicates=["campaign#digest#t1#p2"],
                            skipped={"campaign#digest#t1#p3": "no_consent", "campaign#welcome#r#p4": "quiet_hours"},
                            deferred={"campaign#welcome#r#p4": datetime(2026, 1, 1, tzinfo=UTC)})
    record_campaigns(report)
    counts = emitted()
    assert {k: v for k, v in counts.items() if k.startswith("CampaignMessages")} == {
        "CampaignMessages{campaign=digest,outcome=sent}": 1, "CampaignMessages{campaign=digest,outcome=duplicate}": 1,
        "CampaignMessages{campaign=digest,outcome=no_consent}": 1,
        "CampaignMessages{campaign=welcome,outcome=deferred}": 1}
