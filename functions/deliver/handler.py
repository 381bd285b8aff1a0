"""SQS (segment membership changes, consent signals, re-tried deliveries) -> ad audiences and webhooks."""

import json
import time
from dataclasses import replace
from functools import cache
from pathlib import Path

from aws_lambda_powertools import Logger, Tracer

from cdp.activation.audiences.sync import StoreProfileViews
from cdp.activation.destinations import (
    DeliveryContext,
    DeliveryReport,
    deliver,
    load_destinations,
    parse_delivery,
)
from cdp.adapters.destinations import (
    DynamoAudienceHoldings,
    DynamoDestinationState,
    SecretTargets,
    SqsDeadLetters,
    SqsDeliveryQueue,
    webhook_transport,
)
from cdp.adapters.dynamo_profiles import DynamoIdentityStore
from cdp.adapters.idempotency import DynamoEffectLedger
from cdp.adapters.membership import DynamoMembershipStore
from cdp.observability import metrics, record_delivery
from cdp.settings import DELIVERY_FIELDS, FUNCTION_FIELDS, Settings

logger = Logger()
tracer = Tracer()


@cache
def context() -> DeliveryContext:
    s = Settings.from_env(require=FUNCTION_FIELDS | DELIVERY_FIELDS)
    return DeliveryContext(
        # The demo's destinations (loopback fakes) only where the local stack names their folder.
        destinations=load_destinations([Path(__file__).parent / "config" / "destinations",
                                        *filter(None, [s.extra_destinations_dir])]),
        targets=SecretTargets(s), profiles=StoreProfileViews(DynamoIdentityStore(s)),
        membership=DynamoMembershipStore(s), ledger=DynamoEffectLedger(s, max_attempts=10),
        queue=SqsDeliveryQueue(s), dead_letters=SqsDeadLetters(s), state=DynamoDestinationState(s),
        transport=webhook_transport(s), holdings=DynamoAudienceHoldings(s),
        max_retry_delay=s.destination_retry_max_delay_seconds)


@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context
def handler(event: dict, context_: object) -> dict:
    records = event.get("Records") or []
    # A record that does not parse is dropped with a log line (hostile input: it can never succeed).
    items, ids = [], []
    for record in records:
        try:
            items.append(parse_delivery(json.loads(record["body"])))
            ids.append(record["messageId"])
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("malformed delivery dropped", extra={"messageId": record.get("messageId"), "error": str(exc)})
    # Stop posting 15 s before the timeout: what is left is re-queued, not repeated with the batch.
    remaining = getattr(context_, "get_remaining_time_in_millis", lambda: 60_000)() / 1000
    ctx = replace(context(), deadline=time.monotonic() + remaining - 15)
    report = deliver(items, ctx, now=time.time(), report=DeliveryReport())
    record_delivery(report)
    logger.info("delivery", extra={"messages": len(records), "deferred": report.deferred,
                                   "failed": {ids[i]: why for i, why in report.failed.items()},
                                   "destinations": {n: vars(r) for n, r in report.by_destination.items()}})
    # Only the messages not done come back (ReportBatchItemFailures); the rest are deleted.
    return {"batchItemFailures": [{"itemIdentifier": ids[i]} for i in sorted(report.failed)]}
