"""Kinesis -> Parquet lake. One file per date partition per batch."""

from functools import cache

from aws_lambda_powertools import Logger

from cdp.adapters.lake import lake_filesystem
from cdp.lake.archive import archive_batch
from cdp.settings import FUNCTION_FIELDS, Settings
from cdp.streams import stream_records

logger = Logger()


@cache
def settings() -> Settings:
    return Settings.from_env(require=FUNCTION_FIELDS)


@logger.inject_lambda_context
def handler(event: dict, context: object) -> dict:
    result = archive_batch(stream_records(event), lake_filesystem(settings()), settings().lake_bucket)
    logger.info("archived", extra={"events": result.events, "files": result.written})
    return {"batchItemFailures": [{"itemIdentifier": seq} for seq in result.unreadable]}
