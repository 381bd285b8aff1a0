"""SQS (segment membership changes) -> SES email, once per segment entry."""

import json
from functools import cache
from pathlib import Path

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from cdp.activation import ProfileContacts, activate_change, load_email_templates
from cdp.adapters.dynamo_profiles import DynamoIdentityStore
from cdp.adapters.idempotency import DynamoEffectLedger
from cdp.adapters.ses import SesEmailSender
from cdp.segments.membership import MembershipChange
from cdp.settings import FUNCTION_FIELDS, Settings

logger = Logger()
# A failed message is reported, retried by SQS, then redriven to the dead-letter queue.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@cache
def deps() -> dict:
    settings = Settings.from_env(require=FUNCTION_FIELDS)
    return {"contacts": ProfileContacts(DynamoIdentityStore(settings)), "ledger": DynamoEffectLedger(settings),
            "sender": SesEmailSender(settings),
            "templates": load_email_templates(Path(__file__).parent / "config" / "activation.yaml")}


def record_handler(record: SQSRecord) -> None:
    report = activate_change(MembershipChange.from_dict(json.loads(record.body)), **deps())
    logger.info("activation", extra={"sent": report.sent, "skipped": report.skipped, "dup": report.duplicates})


@logger.inject_lambda_context
def handler(event: dict, context: object) -> dict:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                    context=context)
