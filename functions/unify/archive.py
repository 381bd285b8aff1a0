"""Kinesis -> Parquet lake. One file per date partition per batch."""

from functools import cache

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import KinesisStreamEvent

from cdp.adapters.lake import lake_filesystem
from cdp.lake.archive import StreamRecord, archive_batch
from cdp.settings import Settings

logger = Logger()


@cache
def settings() -> Settings:
    return Settings.from_env()


@logger.inject_lambda_context
def handler(event: dict, context: object) -> dict:
    records = [StreamRecord(r.event_id.split(":", 1)[0], r.kinesis.sequence_number, r.kinesis.data_as_bytes())
               for r in KinesisStreamEvent(event).records]
    result = archive_batch(records, lake_filesystem(settings()), settings().lake_bucket)
    logger.info("archived", extra={"events": result.events, "files": result.written})
    return {"batchItemFailures": [{"itemIdentifier": seq} for seq in result.unreadable]}
