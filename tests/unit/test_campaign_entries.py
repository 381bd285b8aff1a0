"""Automated campaigns on segment entry: send once, defer past quiet hours in hops, journal the send;
SES feedback: a complaint is an opt-out, a redelivered notification the same events."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from cdp.activation import InMemoryEffectLedger
from cdp.campaigns.definition import parse_campaign
from cdp.campaigns.eligibility import Policy
from cdp.campaigns.entries import MAX_HOP_SECONDS, on_entry
from cdp.campaigns.feedback import FeedbackReport, outcome_events
from cdp.campaigns.send import CampaignReport, EmailSetup
from cdp.identity.computed import event_consent
from cdp.identity.profile import Profile
from cdp.profiles.messages import InMemoryMessageJournal
from tests.unit.email_fakes import RecordingSes

CAMPAIGN = parse_campaign("""\
name: welcome
kind: automated
channel: email
consent: email
audience: {segment: new, when: entry}
template: {subject: "Hi {{ first_name }}", text: "Welcome"}
quiet_hours: {start: "21:00", end: "08:00", timezone: UTC}
""", "welcome.yaml")
ENTRY = {"segment": "new", "profile_id": "p1", "change": "entered", "run_id": "r1", "at": "2026-11-30T10:00:00Z"}


class Profiles:
    def __init__(self, *profiles: Profile) -> None:
        self.by_id = {p.profile_id: p for p in profiles}

    def get_profiles(self, ids: Collection[str]) -> Mapping[str, Any]:
        return {i: self.by_id[i] for i in ids if i in self.by_id}


def _run(now: datetime, body: dict | None = None, provider: RecordingSes | None = None,
         journal: InMemoryMessageJournal | None = None, ledger: InMemoryEffectLedger | None = None):  # type: ignore[no-untyped-def]
    provider = provider or RecordingSes()
    report = CampaignReport()
    later = on_entry(body or ENTRY, campaigns=[CAMPAIGN],
                     profiles=Profiles(Profile("p1", identifiers=["email:ada@shopper.io"], traits={"first_name": "Ada"})),
                     journal=journal or InMemoryMessageJournal(), ledger=ledger or InMemoryEffectLedger(),
                     setup=EmailSetup("news@shop.test", provider, "https://x/v1api", lambda: "k"),
                     policy=Policy(), now=now, report=report)
    return later, report, provider


def test_an_entry_outside_quiet_hours_sends_once_and_is_journalled_for_the_caps() -> None:
    journal, ledger = InMemoryMessageJournal(), InMemoryEffectLedger()
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    later, report, provider = _run(now, journal=journal, ledger=ledger)
    again, _, _ = _run(now, journal=journal, ledger=ledger, provider=provider)
    assert not later and not again and len(provider.raw) == 1
    [message] = journal.sent_to(["p1"])
    assert message.segment == "campaign:welcome" and message.key == "campaign#welcome#r1#p1"


def test_an_entry_in_quiet_hours_is_deferred_in_hops_of_at_most_15_minutes_then_sent() -> None:
    night = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    [later], report, provider = _run(night)
    assert not provider.raw and report.skipped_by_reason() == {"quiet_hours": 1}
    assert later.delay_seconds == MAX_HOP_SECONDS and later.body["not_before"] == "2026-12-01T08:00:00.000Z"
    assert later.body["campaign"] == "welcome"

    [hop], _, provider = _run(night + timedelta(minutes=15), body=later.body)  # still early: hop again
    assert not provider.raw and hop.body == later.body
    nothing, report, provider = _run(datetime(2026, 12, 1, 8, 0, 1, tzinfo=UTC), body=later.body)
    assert not nothing and len(provider.raw) == 1 and report.sent == ["campaign#welcome#r1#p1"]


def test_an_exit_or_another_segment_sends_nothing() -> None:
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    assert _run(now, body={**ENTRY, "change": "exited"})[2].raw == []
    assert _run(now, body={**ENTRY, "segment": "other"})[2].raw == []


def _notification(kind: str, **detail: Any) -> dict[str, Any]:
    mail = {"messageId": "ses-1", "destination": ["ada@shopper.io"],
            "tags": {"campaign": ["welcome"], "run": ["r1"], "purpose": ["email"]}}
    return {"eventType": kind, "mail": mail, kind.lower(): detail}


def test_a_complaint_is_an_opt_out_of_the_campaigns_purpose() -> None:
    report = FeedbackReport()
    [event] = outcome_events(_notification("Complaint", complainedRecipients=[{"emailAddress": "Ada@Shopper.io"}]),
                             report)
    assert event["event"] == "Email Complained" and event_consent(event) == {"email": False}
    assert event["context"]["traits"]["email"] == "ada@shopper.io" and report.outcomes == {"complained": 1}


def test_a_redelivered_notification_gives_the_same_message_ids_and_a_soft_bounce_suppresses_nothing() -> None:
    soft = _notification("Bounce", bounceType="Transient", bouncedRecipients=[{"emailAddress": "ada@shopper.io"}])
    first, second = outcome_events(soft, FeedbackReport()), outcome_events(soft, FeedbackReport())
    assert [e["messageId"] for e in first] == [e["messageId"] for e in second] and len(first) == 1


def test_a_notification_of_another_sender_is_ignored() -> None:
    report = FeedbackReport()
    assert outcome_events({"eventType": "Delivery", "mail": {"tags": {}}}, report) == []
    assert report.ignored == {"no_campaign_tag": 1}


def test_a_hard_bounce_of_a_per_segment_email_is_reported_under_its_segment_and_suppresses() -> None:
    report = FeedbackReport()
    bounce = _notification("Bounce", bounceType="Permanent", bouncedRecipients=[{"emailAddress": "ada@shopper.io"}])
    bounce["mail"]["tags"] = {"segment": ["vip"], "run": ["r1"], "purpose": ["email"]}

    bounced, suppression = outcome_events(bounce, report)

    assert bounced["properties"]["campaign"] == "segment-vip" and report.suppressed == ["ada@shopper.io"]
    assert suppression["type"] == "identify"
