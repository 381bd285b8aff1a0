"""Business metrics: every domain report mapped to CloudWatch metrics, in one place.

Domain code stays pure: it returns reports (ingest result, unify result, segment job report,
activation report) and the handlers hand them to the ``record_*`` functions here. Metrics go
out as CloudWatch Embedded Metric Format (EMF) lines on stdout through Powertools, in the
namespace the template sets (``POWERTOOLS_METRICS_NAMESPACE``) with the ``service`` dimension
(``POWERTOOLS_SERVICE_NAME``). Counts without a dimension join the invocation's metric set,
flushed by ``@metrics.log_metrics``; counts by reason, rule or segment are single metrics, one EMF
line each. Dimension values are codes and segment names, never ids: their number stays small.
Entries and exits per segment are one series each, the segment a property of the line (``detail``):
20 segments would otherwise be 40 series, the largest part of the metrics bill (docs/cost.md).

Only Powertools Metrics is imported here (the collector's cold start is measured); report types
are for annotations only.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

if TYPE_CHECKING:
    from cdp.activation import ActivationReport
    from cdp.activation.destinations import DeliveryReport
    from cdp.campaigns.feedback import FeedbackReport
    from cdp.campaigns.send import CampaignReport
    from cdp.collect.ingest import IngestResult
    from cdp.errors import CdpError
    from cdp.jobs.segment_job import SegmentJobReport
    from cdp.jobs.unify_job import UnifyResult
    from cdp.lake.archive import ArchiveResult

metrics = Metrics()
# A preflight, a profile read or a batch with nothing to count has no business numbers: that is normal.
warnings.filterwarnings("ignore", message="No application metrics to publish", module="aws_lambda_powertools")


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str
    dimension: str | tuple[str, ...] | None  # besides ``service``
    emitted_by: str  # the function (template logical id)
    meaning: str
    # Counted per value of this property in the log line, not as a dimension: one CloudWatch
    # series instead of one per value ($0.30 a month each); Logs Insights sums it by the property.
    detail: str | None = None


# The properties counts are broken down by in the log lines (``MetricSpec.detail``).
DETAIL_PROPERTIES = ("segment",)


CATALOGUE: dict[str, MetricSpec] = {spec.name: spec for spec in (
    MetricSpec("EventsAccepted", None, "CollectFunction", "events written to the stream"),
    MetricSpec("EventsRejected", "reason", "CollectFunction", "events refused one by one (400 per index)"),
    MetricSpec("EventsQuarantined", None, "CollectFunction",
               "rejected events and unreadable bodies of known senders kept in quarantine/"),
    MetricSpec("RequestsRejected", "reason", "CollectFunction",
               "whole requests refused: unreadable, too large, all events rejected, stream unavailable"),
    MetricSpec("WriteKeyRejected", "reason", "CollectFunction", "requests with a missing or unknown write key"),
    MetricSpec("EventsUnified", None, "UnifyFunction", "events applied to a profile"),
    MetricSpec("EventsUnresolvable", "reason", "UnifyFunction",
               "events unify cannot apply, ever (e.g. no usable identifier); archived all the same"),
    MetricSpec("UnifyRetries", None, "UnifyFunction", "records reported as batch item failures (retried)"),
    MetricSpec("ProfilesCreated", None, "UnifyFunction", "profiles written for the first time"),
    MetricSpec("ProfilesMerged", None, "UnifyFunction", "profiles absorbed into another (now tombstones)"),
    MetricSpec("MergesRefused", "rule", "UnifyFunction",
               "links refused by merge protection (limit_<type>, unmerged, blocked values)"),
    MetricSpec("EventsArchived", None, "ArchiveFunction", "events written to the Parquet lake"),
    MetricSpec("RecordsUnreadable", None, "ArchiveFunction", "stream records the archive cannot decode"),
    MetricSpec("SegmentsRun", None, "SegmentFunction", "segments run at a tick (those due)"),
    MetricSpec("SegmentEntries", None, "SegmentFunction, UnifyFunction",
               "profiles entering a segment (scheduled runs and real-time segments)", detail="segment"),
    MetricSpec("SegmentExits", None, "SegmentFunction, UnifyFunction", "profiles leaving a segment",
               detail="segment"),
    MetricSpec("SegmentRunFailures", "segment", "SegmentFunction",
               "segment runs that failed; the segment keeps its previous membership"),
    MetricSpec("EmailsSent", None, "ActivateFunction", "emails handed to SES"),
    MetricSpec("EmailsSkipped", "reason", "ActivateFunction",
               "changes that send nothing: exited, no_channel, no_email, no_consent, duplicate"),
    MetricSpec("CampaignSkipped", "reason", "ActivateFunction",
               "campaign messages not sent: no_email, no_consent, suppressed, frequency_cap, global_cap, "
               "quiet_hours, duplicate"),
    MetricSpec("CampaignMessages", ("campaign", "outcome"), "ActivateFunction",
               "campaign messages decided, per campaign: sent, duplicate, deferred or the skip reason"),
    MetricSpec("CampaignDeferred", None, "ActivateFunction",
               "campaign messages put back on the queue until the person's quiet hours end"),
    MetricSpec("CampaignTriggers", None, "UnifyFunction",
               "trigger messages of triggered campaigns put on the activation queue (a redelivery repeats them)"),
    MetricSpec("CampaignTriggersStale", None, "UnifyFunction",
               "triggers whose wait ended over a day ago (an imported history): not acted on"),
    MetricSpec("TriggeredSkipped", "reason", "ActivateFunction",
               "triggered-campaign messages not sent: cancelled_unless, stale, no_profile, the campaign skips, duplicate"),
    MetricSpec("TriggeredWaiting", None, "ActivateFunction",
               "triggers whose wait goes on: a one-time schedule (over 15 min), or back on the queue"),
    MetricSpec("EmailOutcomes", "reason", "FeedbackFunction",
               "what SES reported of campaign emails: delivered, bounced, complained, rejected, opened, clicked"),
    MetricSpec("ActivationFailures", None, "ActivateFunction",
               "messages that failed and go back to the queue (then its dead-letter queue)"),
    MetricSpec("DestinationPushed", "destination", "DeliverFunction",
               "audience adds and removes applied, webhook messages accepted"),
    MetricSpec("DestinationRetries", "destination", "DeliverFunction",
               "deliveries re-queued after a failure, a rate limit or a Retry-After"),
    MetricSpec("DestinationDeadLetters", "destination", "DeliverFunction",
               "deliveries that gave up, were refused for good or hit a disabled webhook"),
    MetricSpec("EventsSuppressed", None, "CollectFunction, UnifyFunction, ArchiveFunction",
               "events about a suppressed person (a privacy request): dropped and counted, never stored"),
    MetricSpec("PrivacyRequestsOverdue", None, "PrivacyFunction",
               "privacy requests still open past their due date (one month after they were received)"),
)}


def _add(name: str, value: int) -> None:
    """An undimensioned count, in the invocation's metric set (0 too: graphs and alarms see data)."""
    metrics.add_metric(name=CATALOGUE[name].name, unit=MetricUnit.Count, value=value)


def _add_by(name: str, counts: Mapping[str, int] | Mapping[tuple[str, ...], int]) -> None:
    """One EMF line per key: by a dimension (a series per key; a tuple key for several dimensions),
    or by a detail property in the line."""
    spec = CATALOGUE[name]
    assert spec.dimension is not None or spec.detail is not None, name
    names = (spec.dimension,) if isinstance(spec.dimension, str) else spec.dimension
    for key, value in sorted(counts.items()):
        if value:
            with single_metric(name=name, unit=MetricUnit.Count, value=value,
                               default_dimensions=metrics.default_dimensions) as metric:
                if names is not None:
                    for dim, part in zip(names, (key,) if isinstance(key, str) else key, strict=True):
                        metric.add_dimension(name=dim, value=part)
                else:
                    metric.add_metadata(key=str(spec.detail), value=str(key))


def _tally(keys: Iterable[str]) -> Counter[str]:
    return Counter(keys)


# ---------------------------------------------------------------- destinations
def record_delivery(report: DeliveryReport) -> None:
    """One batch of the destinations queue: pushed, re-tried and dead-lettered, per destination."""
    by = report.by_destination
    _add_by("DestinationPushed", {name: r.pushed for name, r in by.items()})
    _add_by("DestinationRetries", {name: r.retried for name, r in by.items()})
    _add_by("DestinationDeadLetters", {name: sum(r.dead.values()) for name, r in by.items()})


# ---------------------------------------------------------------- collect
def record_ingest(result: IngestResult) -> None:
    _add("EventsAccepted", result.accepted)
    _add("EventsQuarantined", result.quarantined)
    _add_by("EventsRejected", _tally(r.reason for r in result.rejected))
    if result.suppressed:
        _add("EventsSuppressed", result.suppressed)


def record_suppressed(count: int) -> None:
    if count:
        _add("EventsSuppressed", count)


def record_overdue(count: int) -> None:
    _add("PrivacyRequestsOverdue", count)


def record_ingest_error(error: CdpError) -> None:
    """A refused request: the write key, the whole body, or every one of its events."""
    from cdp.errors import EventsRejected, WriteKeyRejected

    if isinstance(error, WriteKeyRejected):
        _add_by("WriteKeyRejected", {error.reason: 1})
        return
    _add("EventsAccepted", 0)
    _add("EventsQuarantined", int(error.details.get("quarantined", 0)))  # type: ignore[call-overload]
    _add_by("RequestsRejected", {error.reason: 1})
    if isinstance(error, EventsRejected):
        rejected = error.details.get("rejected") or []
        _add_by("EventsRejected", _tally(str(r["reason"]) for r in rejected))  # type: ignore[attr-defined]


# ---------------------------------------------------------------- unify and archive
def record_unify(result: UnifyResult) -> None:
    outcome = result.outcome
    _add("EventsUnified", len(outcome.applied))
    _add("UnifyRetries", len(result.retry))
    _add("ProfilesCreated", len(outcome.created))
    record_suppressed(result.suppressed)
    _add("ProfilesMerged", sum(len(entry.other_profile_ids) for entry in outcome.merges))
    _add_by("EventsUnresolvable", _tally(outcome.rejected.values()))
    _add_by("MergesRefused", _tally(entry.rule or "unknown" for entry in outcome.refusals))
    _add_by("SegmentEntries", _tally(c.segment for c in result.changes if c.change == "entered"))
    _add_by("SegmentExits", _tally(c.segment for c in result.changes if c.change == "exited"))
    _add("CampaignTriggers", result.triggers)
    _add("CampaignTriggersStale", result.triggers_stale)


def record_triggered(report: CampaignReport) -> None:
    """One batch's triggered-campaign decisions: sent (they count as emails sent), skipped by reason
    (``cancelled_unless``, ``stale``, the send skips ...), and waits scheduled or put back on the queue."""
    _add("EmailsSent", len(report.sent))
    _add_by("TriggeredSkipped", _tally([*report.skipped.values(), *(["duplicate"] * len(report.duplicates))]))
    _add("TriggeredWaiting", len(report.deferred))


def record_archive(result: ArchiveResult) -> None:
    _add("EventsArchived", result.events)
    _add("RecordsUnreadable", len(result.unreadable))
    record_suppressed(result.suppressed)


# ---------------------------------------------------------------- segments
def record_segment_job(report: SegmentJobReport) -> None:
    _add("SegmentsRun", len(report.segments))
    _add_by("SegmentEntries", {r.segment: r.entered for r in report.segments})
    _add_by("SegmentExits", {r.segment: r.exited for r in report.segments})
    _add_by("SegmentRunFailures", dict.fromkeys(report.failures, 1))


# ---------------------------------------------------------------- activation
def record_feedback(report: FeedbackReport) -> None:
    """One notification batch of SES events (cdp.campaigns.feedback)."""
    _add_by("EmailOutcomes", report.outcomes)


def record_campaigns(report: CampaignReport) -> None:
    """One batch's campaign sends (cdp.campaigns.send.CampaignReport): sent emails count as emails sent."""
    _add("EmailsSent", len(report.sent))
    _add_by("CampaignSkipped", _tally([*report.skipped.values(), *(["duplicate"] * len(report.duplicates))]))
    _add("CampaignDeferred", len(report.deferred))
    # Keys are campaign#<name>#<run>#<profile>: the name is the second part (names have no '#').
    outcomes: list[tuple[str, ...]] = [(k.split("#")[1], "sent") for k in report.sent]
    outcomes += [(k.split("#")[1], "duplicate") for k in report.duplicates]
    outcomes += [(k.split("#")[1], "refused") for k in report.failed]
    outcomes += [(k.split("#")[1], "deferred" if k in report.deferred else reason) for k, reason in report.skipped.items()]
    _add_by("CampaignMessages", Counter(outcomes))


def record_activation(report: ActivationReport, failures: int) -> None:
    """One batch's activation report, and how many of its messages failed."""
    _add("EmailsSent", len(report.sent))
    _add("ActivationFailures", failures)
    _add_by("EmailsSkipped", _tally([*report.skipped.values(), *(["duplicate"] * len(report.duplicates))]))
