"""SNS (SES event publishing of the campaign configuration set) -> outcome events on the stream."""

from datetime import UTC, datetime
from functools import cache

from aws_lambda_powertools import Logger, Tracer

from cdp.adapters.kinesis import KinesisSink
from cdp.campaigns.feedback import process
from cdp.observability import metrics, record_feedback
from cdp.settings import FUNCTION_FIELDS, Settings

logger = Logger()
tracer = Tracer()


@cache
def sink() -> KinesisSink:
    return KinesisSink(Settings.from_env(require=FUNCTION_FIELDS))


@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context
def handler(event: dict, context: object) -> dict:
    report = process(event, sink=sink(), now=datetime.now(UTC))  # a stream failure raises: SNS retries
    record_feedback(report)
    logger.info("feedback", extra={"outcomes": report.outcomes, "ignored": report.ignored,
                                   "suppressed": len(report.suppressed)})
    return {"outcomes": report.outcomes, "ignored": report.ignored}
