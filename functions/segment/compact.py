"""EventBridge schedule (daily) -> merge the previous day's small Parquet files into few large ones."""

from dataclasses import asdict
from datetime import timedelta
from functools import cache

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent

from cdp.adapters.lake import lake_filesystem, lake_root
from cdp.lake.compaction import compact_partition
from cdp.settings import FUNCTION_FIELDS, Settings
from cdp.times import format_date, parse_timestamp

logger = Logger()
tracer = Tracer()  # patches botocore: S3 calls are subsegments


@cache
def settings() -> Settings:
    return Settings.from_env(require=FUNCTION_FIELDS)


@tracer.capture_lambda_handler
@logger.inject_lambda_context
def handler(event: dict, context: object) -> dict:
    tick = EventBridgeEvent(event)
    # A manual run may name the day: {"detail": {"dt": "2026-11-20"}}; the schedule compacts yesterday.
    dt = (tick.detail or {}).get("dt") or format_date(parse_timestamp(tick.time) - timedelta(days=1))
    report = compact_partition(lake_filesystem(settings()), lake_root(settings()), dt)
    result = {**asdict(report), "duplicates_removed": report.duplicates_removed}
    logger.info("compacted", extra=result)
    return result
