"""EventBridge schedule (daily) -> compute the reports on the lake and write them with the dashboard."""

from datetime import timedelta
from functools import cache
from pathlib import Path

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent

from cdp.adapters.engines import query_engine
from cdp.adapters.lake import bucket_filesystem
from cdp.adapters.run_history import DynamoRunHistory
from cdp.campaigns.definition import load_campaigns
from cdp.errors import InvalidJourney
from cdp.jobs.report_job import compute_report, quarantine_counts, segment_runs, write_report
from cdp.reports import DEFAULT_DAYS, ReportRange
from cdp.reports.journey import JourneyMap, load_journey
from cdp.segments.catalog import all_segments
from cdp.settings import FUNCTION_FIELDS, Settings
from cdp.times import parse_timestamp

logger = Logger()
tracer = Tracer()  # patches botocore: Athena, DynamoDB and S3 calls are subsegments
HERE = Path(__file__).parent


@cache
def settings() -> Settings:
    return Settings.from_env(require=FUNCTION_FIELDS)


def journey() -> JourneyMap | InvalidJourney:
    try:
        return load_journey(HERE / "config" / "journey.yaml")
    except InvalidJourney as exc:  # shown on the dashboard; the other reports still run
        return exc


@tracer.capture_lambda_handler
@logger.inject_lambda_context
def handler(event: dict, context: object) -> dict:
    # A manual run may name the range: {"detail": {"from": "2026-09-01", "to": "2026-11-30", "by": "week"}}
    s, tick = settings(), EventBridgeEvent(event)
    now, detail = parse_timestamp(tick.time), tick.detail or {}
    last = parse_timestamp(detail["to"]).date() if detail.get("to") else now.date()
    first = parse_timestamp(detail["from"]).date() if detail.get("from") else last - timedelta(days=DEFAULT_DAYS)
    fs, root = bucket_filesystem(s), s.lake_bucket
    report = compute_report(
        engine=query_engine(s), window=ReportRange(first, last, detail.get("by", "week")), journey=journey(),
        now=now, run_id=now.strftime("%Y%m%dT%H%M%SZ"),
        segment_runs=segment_runs(DynamoRunHistory(s), [d.name for d in all_segments(HERE / "segments")]),
        quarantine=lambda window: quarantine_counts(fs, root, window), campaigns=load_campaigns(HERE / "campaigns"))
    dashboard = write_report(report, fs, root)
    logger.info("reports written", extra={**report.meta, "dashboard": dashboard})
    return {**report.meta, "dashboard": dashboard}
