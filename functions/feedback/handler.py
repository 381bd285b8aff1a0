"""SNS (SES event publishing of the campaign configuration set) -> outcome events on the stream, and
each Send event's ledger claim confirmed sent."""

from datetime import UTC, datetime
from functools import cache

from aws_lambda_powertools import Logger, Tracer

from cdp.adapters.idempotency import DynamoEffectLedger
from cdp.adapters.kinesis import KinesisSink
from cdp.campaigns.feedback import process
from cdp.observability import metrics, record_feedback
from cdp.settings import FUNCTION_FIELDS, Settings

logger = Logger()
tracer = Tracer()


@cache
def settings() -> Settings:
    return Settings.from_env(require=FUNCTION_FIELDS)


@cache
def sink() -> KinesisSink:
    return KinesisSink(settings())


@cache
def ledger() -> DynamoEffectLedger:
    return DynamoEffectLedger(settings())  # Send events confirm the claims of accepted emails


@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context
def handler(event: dict, context: object) -> dict:
    # A stream or ledger failure raises: SNS retries (both writes are idempotent).
    report = process(event, sink=sink(), now=datetime.now(UTC), ledger=ledger())
    record_feedback(report)
    logger.info("feedback", extra={"outcomes": report.outcomes, "ignored": report.ignored,
                                   "suppressed": len(report.suppressed), "confirmed": report.confirmed,
                                   "already": report.already})
    return {"outcomes": report.outcomes, "ignored": report.ignored}
