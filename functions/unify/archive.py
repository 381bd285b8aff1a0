"""Kinesis -> Parquet lake. One file per date partition per batch."""

from functools import cache

from aws_lambda_powertools import Logger, Tracer

from cdp.adapters.lake import lake_filesystem, lake_root
from cdp.adapters.privacy import DynamoPrivacyStore
from cdp.lake.archive import archive_batch
from cdp.observability import metrics, record_archive
from cdp.privacy.suppression import SuppressionList, is_suppressed
from cdp.settings import FUNCTION_FIELDS, Settings
from cdp.streams import stream_records

logger = Logger()
tracer = Tracer()  # patches botocore: S3 calls are subsegments


@cache
def settings() -> Settings:
    return Settings.from_env(require=FUNCTION_FIELDS)


@cache
def suppression() -> SuppressionList:
    return SuppressionList(DynamoPrivacyStore(settings()))


@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context
def handler(event: dict, context: object) -> dict:
    result = archive_batch(stream_records(event), lake_filesystem(settings()), lake_root(settings()),
                           suppressed=lambda e: is_suppressed(e, suppression()))
    record_archive(result)
    logger.info("archived", extra={"events": result.events, "files": result.written})
    return {"batchItemFailures": [{"itemIdentifier": seq} for seq in result.unreadable]}
