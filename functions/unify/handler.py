"""Kinesis -> identity resolution and profile merge in DynamoDB.

The whole batch is resolved at once (one BatchGetItem for its identifiers, one write per
profile), so the handler does not use a per-record BatchProcessor; it reports partial
failures the same way (batchItemFailures by sequence number).
"""

from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from aws_lambda_powertools import Logger, Tracer

from cdp.adapters.dynamo_profiles import DynamoIdentityStore
from cdp.adapters.failures import S3FailureStore
from cdp.adapters.membership import DynamoMembershipStore
from cdp.adapters.privacy import DynamoPrivacyStore
from cdp.adapters.sqs import SqsChangePublisher, SqsConsentSignals, SqsTriggerPublisher
from cdp.campaigns.definition import load_campaigns
from cdp.campaigns.triggers import TriggerIndex
from cdp.errors import InvalidCampaign
from cdp.identity.config import IdentityConfig, load_identity_config
from cdp.jobs.unify_job import CampaignTriggers, RealtimeSegments, unify_records
from cdp.observability import metrics, record_unify
from cdp.privacy.suppression import SuppressionList
from cdp.segments.catalog import all_segments
from cdp.segments.realtime import realtime_segments
from cdp.settings import FUNCTION_FIELDS, Settings
from cdp.streams import stream_records

logger = Logger()
tracer = Tracer()  # patches botocore: every DynamoDB and SQS call is a subsegment


@cache
def store() -> DynamoIdentityStore:
    return DynamoIdentityStore(Settings.from_env(require=FUNCTION_FIELDS))


@cache
def failures() -> S3FailureStore:
    return S3FailureStore(Settings.from_env(require=FUNCTION_FIELDS))


@cache
def suppression() -> SuppressionList:
    return SuppressionList(DynamoPrivacyStore(Settings.from_env(require=FUNCTION_FIELDS)))


@cache
def config() -> IdentityConfig:
    return load_identity_config(Path(__file__).parent / "config" / "identity.yaml")


@cache
def realtime() -> RealtimeSegments:
    settings = Settings.from_env(require=FUNCTION_FIELDS)
    return RealtimeSegments(realtime_segments(all_segments(Path(__file__).parent / "segments")),
                            DynamoMembershipStore(settings), SqsChangePublisher(settings),
                            consent_signal=SqsConsentSignals(settings))


@cache
def triggers() -> CampaignTriggers:
    try:
        index = TriggerIndex(load_campaigns(Path(__file__).parent / "campaigns"))
    except InvalidCampaign:  # identity resolution must not stop for a campaign file (activation refuses it too)
        logger.exception("campaign files invalid: no triggers published")
        index = TriggerIndex([])
    return CampaignTriggers(index, SqsTriggerPublisher(Settings.from_env(require=FUNCTION_FIELDS)))


@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context
def handler(event: dict, context: object) -> dict:
    result = unify_records(stream_records(event), store(), config=config(), now=datetime.now(UTC),
                           realtime=realtime(), failures=failures(), suppression=suppression(),
                           triggers=triggers())
    record_unify(result)
    o = result.outcome
    logger.info("unified", extra={"applied": len(o.applied), "duplicates": len(o.duplicates), "failed": o.failed,
                                  "rejected": o.rejected, "isolated": o.isolated,
                                  "kept": len(result.kept), "profiles_created": len(o.created), "merges": len(o.merges),
                                  "refused": len(o.refusals), "retry": len(result.retry),
                                  "segment_changes": len(result.changes), "triggers": result.triggers,
                                  "triggers_stale": result.triggers_stale})
    return {"batchItemFailures": [{"itemIdentifier": seq} for seq in result.retry]}
