"""EventBridge schedule -> snapshot the identity map, run every segment, hand changes to activation,
then fan the due scheduled campaigns out to the activation queue."""

from functools import cache
from pathlib import Path

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent

from cdp.adapters.dynamo_profiles import DynamoIdentityStore
from cdp.adapters.engines import query_engine
from cdp.adapters.lake import lake_filesystem, lake_root
from cdp.adapters.membership import DynamoMembershipStore
from cdp.adapters.sqs import SqsActivationMessages, SqsChangePublisher
from cdp.campaigns.definition import load_campaigns
from cdp.identity.config import IdentityConfig, load_identity_config
from cdp.jobs.segment_job import raise_if_incomplete, refresh_and_snapshot, run_segment_job
from cdp.observability import metrics, record_segment_job
from cdp.segments.catalog import all_segments
from cdp.settings import FUNCTION_FIELDS, Settings
from cdp.times import parse_timestamp

logger = Logger()
tracer = Tracer()  # patches botocore: Athena, DynamoDB, S3 and SQS calls are subsegments
SEGMENTS_DIR = Path(__file__).parent / "segments"
CAMPAIGNS_DIR = Path(__file__).parent / "campaigns"


@cache
def settings() -> Settings:
    return Settings.from_env(require=FUNCTION_FIELDS)


@cache
def identity_config() -> IdentityConfig:
    return load_identity_config(Path(__file__).parent / "config" / "identity.yaml")


@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context
def handler(event: dict, context: object) -> dict:
    s, tick, store = settings(), EventBridgeEvent(event), DynamoIdentityStore(settings())
    now = parse_timestamp(tick.time)
    report = run_segment_job(
        all_segments(SEGMENTS_DIR), engine=query_engine(s), membership=DynamoMembershipStore(s),
        publish=SqsChangePublisher(s), run_id=tick.time, now=now,
        snapshot=lambda: refresh_and_snapshot(store, lake_filesystem(s), lake_root(s), config=identity_config(),
                                              now=now),
        campaigns=load_campaigns(CAMPAIGNS_DIR), enqueue=SqsActivationMessages(s))
    record_segment_job(report)
    logger.info("segments run", extra=report.to_dict())
    raise_if_incomplete(report)  # EventBridge retries the tick: completed segments replay, failed ones run
    return report.to_dict()
