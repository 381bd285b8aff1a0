"""A scheduled campaign's tick on moto: the members fan out to the activation queue 10 a call, the tick
is recorded beside (not among) the segments' runs, and each message becomes one SES v2 raw email."""

from __future__ import annotations

import email
import json
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from email import policy
from typing import Any

import boto3

from cdp.adapters.idempotency import DynamoEffectLedger
from cdp.adapters.membership import DynamoMembershipStore
from cdp.adapters.messages import DynamoMessageJournal
from cdp.adapters.sesv2 import SesV2RawSender
from cdp.adapters.sqs import SqsActivationMessages
from cdp.campaigns.definition import parse_campaign
from cdp.campaigns.eligibility import Policy
from cdp.campaigns.scheduled import (
    FANOUT_TYPE,
    PAGE_ATTEMPTS,
    on_fanout_page,
    on_scheduled,
    run_scheduled_campaigns,
)
from cdp.campaigns.send import CampaignReport, EmailSetup
from cdp.identity.profile import Profile
from cdp.segments.membership import Member
from cdp.settings import Settings
from tests.integration.test_campaign_email import raw_messages

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
DIGEST = parse_campaign("""\
name: digest
kind: automated
channel: email
consent: email
audience: {segment: engaged, when: schedule, schedule: rate(7 days)}
template: {subject: "Your week, {{ first_name }}", text: "Hi {{ first_name }}. {{ unsubscribe_url }}"}
""", "digest.yaml")


class Profiles:
    def get_profiles(self, ids: Collection[str]) -> Mapping[str, Any]:
        return {i: Profile(i, identifiers=[f"email:{i}@shop.test"], traits={"first_name": "Ada"}) for i in ids}


def drain(settings: Settings) -> list[dict[str, Any]]:
    sqs, bodies = boto3.client("sqs"), []
    while True:
        got = sqs.receive_message(QueueUrl=settings.activation_queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return bodies
        for message in got:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=settings.activation_queue_url, ReceiptHandle=message["ReceiptHandle"])


def test_a_due_tick_fans_out_through_the_queue_and_each_member_gets_one_raw_email(stack_settings: Settings) -> None:
    store = DynamoMembershipStore(stack_settings)
    ids = [f"p{i:02d}" for i in range(23)]
    store.apply("engaged", [Member(pid, "r0", "2026-11-01T00:00:00Z") for pid in ids], [])
    store.record_run("engaged", "r0", {"run_id": "r0", "at": "2026-11-30T11:59:00.000Z"})

    tick = run_scheduled_campaigns([DIGEST], store=store, enqueue=SqsActivationMessages(stack_settings),
                                   run_id="2026-11-30T12:00:00Z", now=NOW)
    bodies = drain(stack_settings)
    report, ledger = CampaignReport(), DynamoEffectLedger(stack_settings)
    setup = EmailSetup(stack_settings.email_sender, SesV2RawSender(stack_settings), "https://cdp.test/v1api",
                       lambda: "k")
    for body in bodies + bodies[:3]:  # three delivered twice
        on_scheduled(body, campaigns=[DIGEST], profiles=Profiles(), journal=DynamoMessageJournal(stack_settings),
                     ledger=ledger, setup=setup, policy=Policy(), now=NOW, report=report)

    assert tick.queued == {"digest": 23} and sorted(b["profile_id"] for b in bodies) == ids
    assert store.last_campaign_tick("digest") == {"run_id": "2026-11-30T12:00:00Z", "at": "2026-11-30T12:00:00.000Z",
                                                  "queued": 23}
    assert store.last_run("digest") is None and store.last_run("engaged") is not None  # not a segment's run
    assert len(report.sent) == 23 and len(report.duplicates) == 3
    messages = [email.message_from_string(m.raw_data, policy=policy.default) for m in raw_messages()]
    assert sorted(str(m["To"]) for m in messages) == [f"{pid}@shop.test" for pid in ids]
    first = messages[0]
    assert first["X-CDP-Campaign"] == "digest" and first["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert str(first["List-Unsubscribe"]).startswith("<https://cdp.test/v1api/v1/unsubscribe?p=")


def test_an_audience_beyond_a_page_is_chained_through_the_queue_a_page_a_message(stack_settings: Settings) -> None:
    store, enqueue = DynamoMembershipStore(stack_settings), SqsActivationMessages(stack_settings)
    ids = [f"p{i:02d}" for i in range(23)]
    store.apply("engaged", [Member(pid, "r0", "2026-11-01T00:00:00Z") for pid in ids], [])
    store.record_run("engaged", "r0", {"run_id": "r0", "at": "2026-11-30T11:59:00.000Z"})
    pages = DynamoEffectLedger(stack_settings, max_attempts=PAGE_ATTEMPTS)

    tick = run_scheduled_campaigns([DIGEST], store=store, enqueue=enqueue, run_id="2026-11-30T12:00:00Z", now=NOW,
                                   page_size=10)
    members, outcomes, todo = [], [], drain(stack_settings)
    while todo:
        for body in todo:
            if body["type"] == FANOUT_TYPE:
                for _ in range(2):  # each page delivered twice: the second finds the claim sent
                    outcomes.append(on_fanout_page(body, campaigns=[DIGEST], store=store, enqueue=enqueue,
                                                   ledger=pages, page_size=10))
            else:
                members.append(body["profile_id"])
        todo = drain(stack_settings)

    assert tick.queued == {"digest": 10} and tick.paged == ["digest"]
    assert sorted(members) == ids  # the page's Query from its cursor on the real key order: none twice
    assert outcomes == ["queued:10", "duplicate", "queued:3", "duplicate"]
    assert pages.state("fanout#digest#2026-11-30T12:00:00Z#2")["state"] == "sent"
