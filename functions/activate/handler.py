"""SQS (segment membership changes) -> SES email, once per segment entry."""

import json
from collections import Counter
from functools import cache, partial
from pathlib import Path

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from cdp.activation import ActivationReport, ProfileContacts, activate_change, load_email_templates
from cdp.adapters.dynamo_profiles import DynamoIdentityStore
from cdp.adapters.idempotency import DynamoEffectLedger
from cdp.adapters.ses import SesEmailSender
from cdp.observability import metrics, record_activation
from cdp.segments.membership import MembershipChange
from cdp.settings import FUNCTION_FIELDS, Settings

logger = Logger()
tracer = Tracer()  # patches botocore: DynamoDB and SES calls are subsegments
# A failed message is reported, retried by SQS, then redriven to the dead-letter queue.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@cache
def deps() -> dict:
    settings = Settings.from_env(require=FUNCTION_FIELDS)
    return {"contacts": ProfileContacts(DynamoIdentityStore(settings)), "ledger": DynamoEffectLedger(settings),
            "sender": SesEmailSender(settings),
            "templates": load_email_templates(Path(__file__).parent / "config" / "activation.yaml")}


def record_handler(record: SQSRecord, report: ActivationReport | None = None) -> None:
    activate_change(MembershipChange.from_dict(json.loads(record.body)), report=report, **deps())


@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context
def handler(event: dict, context: object) -> dict:
    report = ActivationReport()  # one for the batch: one log line and one metric set per batch
    response = process_partial_response(event=event, record_handler=partial(record_handler, report=report),
                                        processor=processor, context=context)
    failures = len(response.get("batchItemFailures") or [])
    record_activation(report, failures)
    logger.info("activation", extra={"messages": len(event.get("Records") or []), "sent": len(report.sent),
                                     "skipped": dict(Counter(report.skipped.values())), "duplicates": len(report.duplicates),
                                     "failed": failures, "refused": dict(Counter(report.failed.values())),
                                     "unrecorded": len(report.unrecorded)})
    return response
