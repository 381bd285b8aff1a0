"""EventBridge schedule -> snapshot the identity map, run every segment, hand changes to activation."""

from functools import cache
from pathlib import Path

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent

from cdp.adapters.dynamo_profiles import DynamoIdentityStore
from cdp.adapters.engines import query_engine
from cdp.adapters.lake import lake_filesystem
from cdp.adapters.membership import DynamoMembershipStore
from cdp.adapters.sqs import SqsChangePublisher
from cdp.jobs.segment_job import run_segment_job, write_snapshots
from cdp.lake import parse_time
from cdp.segments.definition import load_segments
from cdp.settings import Settings

logger = Logger()
SEGMENTS_DIR = Path(__file__).parent / "segments"


@cache
def settings() -> Settings:
    return Settings.from_env()


@logger.inject_lambda_context
def handler(event: dict, context: object) -> dict:
    s, tick = settings(), EventBridgeEvent(event)
    report = run_segment_job(
        load_segments(SEGMENTS_DIR), engine=query_engine(s), membership=DynamoMembershipStore(s.membership_table),
        publish=SqsChangePublisher(s), run_id=tick.time, now=parse_time(tick.time),
        snapshot=lambda: write_snapshots(DynamoIdentityStore(s), lake_filesystem(s), s.lake_bucket))
    logger.info("segments run", extra=report.to_dict())
    return report.to_dict()
