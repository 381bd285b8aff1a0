"""SQS (segment membership changes, campaign triggers, scheduled campaign messages) -> SES v2 email,
once per segment entry, entry campaign, trigger and (scheduled campaign, tick, person)."""

import json
from collections import Counter
from datetime import UTC, datetime
from functools import cache, partial
from pathlib import Path

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from cdp.activation import (
    ActivationReport,
    ProfileContacts,
    activate_change,
    effect_key,
    load_email_templates,
)
from cdp.adapters.destinations import SqsDeliveryQueue
from cdp.adapters.dynamo_profiles import DynamoIdentityStore
from cdp.adapters.idempotency import DynamoEffectLedger
from cdp.adapters.membership import DynamoMembershipStore
from cdp.adapters.messages import DynamoMessageJournal
from cdp.adapters.scheduler import OneTimeSchedules
from cdp.adapters.secrets import CachedSecret
from cdp.adapters.sesv2 import SesV2RawSender
from cdp.adapters.sqs import SqsActivationMessages, SqsDeferrals
from cdp.campaigns.definition import load_campaigns
from cdp.campaigns.eligibility import load_policy
from cdp.campaigns.entries import on_entry
from cdp.campaigns.scheduled import FANOUT_TYPE, MESSAGE_TYPE, PAGE_ATTEMPTS, on_fanout_page, on_scheduled
from cdp.campaigns.send import CampaignReport, EmailSetup, WebhookSetup
from cdp.campaigns.triggers import BODY_KEY, TriggerContext, on_trigger, unless_traits
from cdp.identity.config import load_identity_config
from cdp.observability import metrics, record_activation, record_campaigns, record_triggered
from cdp.profiles.messages import record_sent
from cdp.segments.membership import MembershipChange
from cdp.settings import ACTIVATION_FIELDS, FUNCTION_FIELDS, Settings
from cdp.times import format_time

logger = Logger()
tracer = Tracer()  # patches botocore: DynamoDB and SES calls are subsegments
# A failed message is reported, retried by SQS, then redriven to the dead-letter queue.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@cache
def settings() -> Settings:
    return Settings.from_env(require=FUNCTION_FIELDS | ACTIVATION_FIELDS)


@cache
def setup() -> EmailSetup:
    """The one email path (SES v2 raw, configuration set, signed unsubscribe) of every email sent here."""
    s = settings()
    return EmailSetup(s.email_sender, SesV2RawSender(s), s.unsubscribe_base_url,
                      CachedSecret(s, s.unsubscribe_secret_arn).value)


@cache
def deps() -> dict:
    s = settings()
    return {"contacts": ProfileContacts(DynamoIdentityStore(s)), "ledger": DynamoEffectLedger(s), "setup": setup(),
            "templates": load_email_templates(Path(__file__).parent / "config" / "activation.yaml")}


@cache
def journal() -> DynamoMessageJournal:
    return DynamoMessageJournal(settings())


@cache
def campaign_deps() -> dict:
    here = Path(__file__).parent
    return {"campaigns": load_campaigns(here / "campaigns"), "policy": load_policy(here / "config" / "activation.yaml"),
            "profiles": DynamoIdentityStore(settings()), "journal": journal(), "ledger": deps()["ledger"],
            "setup": setup(), "deferrals": SqsDeferrals(settings())}


@cache
def fanout_deps() -> dict:
    s = settings()
    return {"campaigns": campaign_deps()["campaigns"], "store": DynamoMembershipStore(s),
            "enqueue": SqsActivationMessages(s), "ledger": DynamoEffectLedger(s, max_attempts=PAGE_ATTEMPTS)}


@cache
def trigger_context() -> TriggerContext:
    d = campaign_deps()
    identity = load_identity_config(Path(__file__).parent / "config" / "identity.yaml")
    return TriggerContext(campaigns={c.name: c for c in d["campaigns"]}, unless=unless_traits(d["campaigns"], identity),
                          profiles=d["profiles"], journal=d["journal"], ledger=d["ledger"], setup=d["setup"],
                          policy=d["policy"], schedule=OneTimeSchedules(settings()),
                          webhooks=WebhookSetup(SqsDeliveryQueue(settings())))


def record_handler(record: SQSRecord, report: ActivationReport | None = None,
                   campaigns: CampaignReport | None = None, triggered: CampaignReport | None = None) -> None:
    body = json.loads(record.body)
    if BODY_KEY in body:
        later = on_trigger(body, trigger_context(), now=datetime.now(UTC),
                           report=triggered if triggered is not None else CampaignReport())
        campaign_deps()["deferrals"].defer(later)
        return
    if body.get("type") == FANOUT_TYPE:  # a page of a scheduled campaign's tick: its members, then the next page
        logger.info("fan-out page", extra={"campaign": body.get("campaign"), "page": body.get("page"),
                                           "outcome": on_fanout_page(body, **fanout_deps())})
        return
    d = campaign_deps()
    args = {k: d[k] for k in ("campaigns", "profiles", "journal", "ledger", "setup", "policy")}
    sent = campaigns if campaigns is not None else CampaignReport()
    if body.get("type") == MESSAGE_TYPE:  # one person of a scheduled campaign's tick
        d["deferrals"].defer(on_scheduled(body, **args, now=datetime.now(UTC), report=sent))
        return
    if "campaign" not in body:  # a deferred campaign message is for that campaign only
        deliver_segment_email(body, report)
    d["deferrals"].defer(on_entry(body, **args, now=datetime.now(UTC), report=sent))


def deliver_segment_email(body: dict, report: ActivationReport | None) -> None:
    change = MembershipChange.from_dict(body)
    report = activate_change(change, report=report, **deps())
    # What was sent, by profile, for the customer view (the ledger's keys cannot be listed by profile).
    record_sent(journal(), key=effect_key(change), sent=report.sent, profile_id=change.profile_id,
                segment=change.segment, run=change.run_id, entered_at=change.at,
                sent_at=format_time(datetime.now(UTC)))


@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context
def handler(event: dict, context: object) -> dict:
    report = ActivationReport()  # one for the batch: one log line and one metric set per batch
    campaigns, triggered = CampaignReport(), CampaignReport()
    response = process_partial_response(event=event, processor=processor, context=context,
                                        record_handler=partial(record_handler, report=report, campaigns=campaigns,
                                                               triggered=triggered))
    failures = len(response.get("batchItemFailures") or [])
    record_activation(report, failures)
    record_campaigns(campaigns)
    record_triggered(triggered)
    logger.info("activation", extra={"messages": len(event.get("Records") or []), "sent": len(report.sent),
                                     "skipped": dict(Counter(report.skipped.values())), "duplicates": len(report.duplicates),
                                     "failed": failures, "refused": dict(Counter(report.failed.values())),
                                     "unrecorded": len(report.unrecorded),
                                     "campaigns": {"sent": len(campaigns.sent), "duplicates": len(campaigns.duplicates),
                                                   "skipped": campaigns.skipped_by_reason(),
                                                   "deferred": len(campaigns.deferred)},
                                     "triggered": {"sent": len(triggered.sent), "skipped": triggered.skipped_by_reason(),
                                                   "waiting": len(triggered.deferred)}})
    return response
