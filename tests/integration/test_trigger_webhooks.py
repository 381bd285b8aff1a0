"""A behaviour trigger as a webhook source (``channel: webhook``): the campaign decides, the
destinations queue carries the trigger, DeliverFunction posts it signed (Standard Webhooks) with the
segment-change webhooks' retries, 410, dead letters and replay. The crash matrix of
docs/architecture.md ("Triggered campaigns posted to a webhook"), each cell, against the loopback
receiver."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from cdp.activation import InMemoryEffectLedger
from cdp.activation.destinations import (
    DeliveryContext,
    InMemoryDestinationState,
    deliver,
    parse_delivery,
    parse_destination,
)
from cdp.activation.trigger_posts import TriggerPost
from cdp.adapters.http import Urllib3Transport
from cdp.campaigns.definition import check_destinations, parse_campaign
from cdp.campaigns.eligibility import Policy
from cdp.campaigns.send import CampaignReport, EmailSetup, WebhookSetup
from cdp.campaigns.triggers import TriggerContext, TriggerIndex, TriggerMessage, emit_triggers, on_trigger
from cdp.errors import EffectInFlight, InvalidCampaign, StoreError
from cdp.identity.computed import Consent, ConsentStatement
from cdp.identity.profile import Profile
from cdp.profiles.messages import InMemoryMessageJournal
from cdp.segments.membership import InMemoryMembershipStore
from cdp_infra.destinations_cli import replay_dead_letters
from cdp_infra.fakes import WebhookReceiver
from tests.destination_support import FakeTargets, ListDeadLetters, ListQueue

SECRET = "whsec_" + base64.b64encode(b"t" * 32).decode()
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
AT = "2026-11-30T10:00:00.000Z"
CAMPAIGN_TEXT = """\
name: checkout-to-crm
kind: triggered
channel: webhook
consent: marketing
trigger: {event: Checkout Started, delay_minutes: 60}
webhook: {destination: crm, properties: [currency, value, cart]}
"""
CAMPAIGN = parse_campaign(CAMPAIGN_TEXT + "frequency_cap: {max: 5, days: 1}\n", "checkout-to-crm.yaml")


class Crash(BaseException):
    """The process dies here."""


class Profiles:
    def __init__(self, *profiles: Profile) -> None:
        self.by_id = {p.profile_id: p for p in profiles}

    def get_profiles(self, ids: Collection[str]) -> Mapping[str, Any]:
        return {i: self.by_id[i] for i in ids if i in self.by_id}

    def views(self, ids: list[str]) -> dict[str, Mapping[str, Any]]:
        return {i: self.by_id[i].view() for i in ids if i in self.by_id}


def ada(marketing: bool | None = None) -> Profile:
    consent = Consent({"marketing": ConsentStatement(marketing, "s")}) if marketing is not None else Consent()
    return Profile("p1", identifiers=["email:ada@shopper.io"], traits={"first_name": "Ada"}, consent=consent)


class Queue(ListQueue):
    """The destinations queue as activation sees it; ``fail``: SendMessageBatch refused."""

    fail: bool = False
    crash_after: bool = False

    def send(self, items: Any) -> None:
        if self.fail:
            raise StoreError("queue throttled", retryable=True)
        super().send(items)
        if self.crash_after:
            self.crash_after = False
            raise Crash


class World:
    def __init__(self, receiver: WebhookReceiver, *, profile: Profile | None = None) -> None:
        self.clock = [float(int(time.time()))]
        self.ledger = InMemoryEffectLedger(clock=lambda: self.clock[0])  # activation: campaign#...
        self.hook_ledger = InMemoryEffectLedger(clock=lambda: self.clock[0], max_attempts=10)  # deliver: wh#...
        self.profiles = Profiles(profile or ada(True))
        self.queue = Queue()
        self.trigger = TriggerContext(
            campaigns={CAMPAIGN.name: CAMPAIGN}, unless={}, profiles=self.profiles, journal=InMemoryMessageJournal(),
            ledger=self.ledger, setup=EmailSetup("n@shop.test", None, "https://x/v1api", lambda: "k"),  # type: ignore[arg-type]
            policy=Policy(), schedule=lambda *a: None, webhooks=WebhookSetup(self.queue))
        destination = parse_destination(f"type: webhook\nsecret: crm\nurl: {receiver.url}/in\n", "crm.yaml")
        self.deliver_ctx = DeliveryContext(
            destinations={"crm": destination}, profiles=self.profiles, membership=InMemoryMembershipStore(),
            targets=FakeTargets(Urllib3Transport(), secrets={"crm": SECRET}), ledger=self.hook_ledger,
            queue=ListQueue(), dead_letters=ListDeadLetters(), state=InMemoryDestinationState(),
            transport=Urllib3Transport(allow_local=True), rand=lambda: 0.5)

    def decide(self, message: TriggerMessage | None = None) -> CampaignReport:
        report = CampaignReport()
        on_trigger((message or checkout()).to_body(), self.trigger, now=NOW, report=report)
        return report

    def post_queued(self) -> Any:
        """DeliverFunction receives what activation queued (as JSON, the way SQS carries it)."""
        items = [parse_delivery(json.loads(json.dumps(item.to_dict()))) for item, _ in self.queue.sent]
        self.queue.sent.clear()
        return deliver(items, self.deliver_ctx, now=self.clock[0])


def checkout() -> TriggerMessage:
    [(message, _)] = emit_triggers(
        [{"type": "track", "event": "Checkout Started", "messageId": "m-1", "timestamp": AT,
          "properties": {"currency": "EUR", "value": 42.5, "cart": {"items": 3}, "email": "ada@shopper.io"}}],
        {"m-1": "p1"}, TriggerIndex([CAMPAIGN]), now=NOW).messages
    return message


@pytest.fixture
def receiver() -> Any:
    with WebhookReceiver(SECRET) as fake:
        yield fake
    assert fake.violations == []


# ---------------------------------------------------------------- the campaign file


def test_a_webhook_campaign_names_its_destination_and_non_personal_properties() -> None:
    assert CAMPAIGN.webhook is not None and CAMPAIGN.webhook.destination == "crm"
    check_destinations([CAMPAIGN], {"crm": parse_destination("type: webhook\nsecret: s\nurl: https://e.com\n", "crm.yaml")})


@pytest.mark.parametrize(("change", "where"), [
    ("properties: [currency, billingEmail]", "checkout-to-crm.yaml:6: webhook.properties[1]"),
    ("properties: [first_name]", "checkout-to-crm.yaml:6: webhook.properties[0]"),
])
def test_a_property_that_looks_like_personal_data_is_refused_with_its_line(change: str, where: str) -> None:
    text = CAMPAIGN_TEXT.replace("properties: [currency, value, cart]", change)
    with pytest.raises(InvalidCampaign) as caught:
        parse_campaign(text, "checkout-to-crm.yaml")
    assert str(caught.value).startswith(where) and "personal data" in str(caught.value)


@pytest.mark.parametrize(("text", "field"), [
    ("kind: automated\naudience: {segment: vip}\n", "channel"),
    ("template: {subject: s, text: t}\n", "template"),
])
def test_webhook_is_a_channel_of_triggered_campaigns_without_a_template(text: str, field: str) -> None:
    base = CAMPAIGN_TEXT.replace("kind: triggered\n", "").replace("trigger: {event: Checkout Started, delay_minutes: 60}\n", "")
    source = base + text if field == "channel" else CAMPAIGN_TEXT + text
    with pytest.raises(InvalidCampaign) as caught:
        parse_campaign(source, "c.yaml")
    assert f": {field}: " in str(caught.value)


def test_a_campaign_naming_no_webhook_destination_is_refused() -> None:
    audience = parse_destination("type: meta_audience\nsegments: [vip]\nsecret: m\naudience_id: '1'\n", "crm.yaml")
    for destinations in ({}, {"crm": audience}):
        with pytest.raises(InvalidCampaign, match="webhook.destination"):
            check_destinations([CAMPAIGN], destinations)


# ---------------------------------------------------------------- decided, queued, posted


def test_the_trigger_is_posted_signed_with_the_documented_payload_and_nothing_personal(receiver) -> None:  # type: ignore[no-untyped-def]
    world = World(receiver)
    report = world.decide()
    assert report.sent == ["campaign#checkout-to-crm#m-1"]
    delivered = world.post_queued()
    assert delivered.by_destination["crm"].posted == 1
    [(webhook_id, message)] = receiver.messages.items()
    assert webhook_id.startswith("msg_") and message == {
        "type": "campaign.triggered", "timestamp": AT,
        "data": {"campaign": "checkout-to-crm", "event": "Checkout Started", "message_id": "m-1", "event_time": AT,
                 "profile_id": "p1", "properties": {"currency": "EUR", "value": 42.5}}}  # a dict and email left out


def test_no_consent_for_the_purpose_posts_nothing_and_needs_no_email_address(receiver) -> None:  # type: ignore[no-untyped-def]
    denied = World(receiver, profile=ada(False))
    assert denied.decide().skipped == {"campaign#checkout-to-crm#m-1": "no_consent"} and not denied.queue.sent
    no_email = Profile("p1", identifiers=["anonymous:a1"], consent=Consent({"marketing": ConsentStatement(True, "s")}))
    assert World(receiver, profile=no_email).decide().sent == ["campaign#checkout-to-crm#m-1"]


def test_consent_withdrawn_after_the_decision_is_checked_again_before_the_post(receiver) -> None:  # type: ignore[no-untyped-def]
    world = World(receiver)
    world.decide()
    world.profiles.by_id["p1"] = ada(False)
    report = world.post_queued()
    assert report.by_destination["crm"].skipped == {"no_consent": 1} and receiver.requests == []


def test_a_429_with_retry_after_slows_down_and_a_410_disables_then_replay_posts_once(receiver) -> None:  # type: ignore[no-untyped-def]
    world = World(receiver)
    world.decide()
    receiver.fail_next(429, {}, {"Retry-After": "120"})
    world.post_queued()
    ((retry, delay),) = world.deliver_ctx.queue.sent  # type: ignore[attr-defined]
    assert isinstance(retry, TriggerPost) and retry.attempt == 1 and delay == 120
    receiver.fail_next(410, {})
    deliver([retry], world.deliver_ctx, now=retry.not_before)
    [dead] = world.deliver_ctx.dead_letters.kept  # type: ignore[attr-defined]
    assert dead.reason == "disabled" and world.deliver_ctx.state.disabled("crm")
    # The operator enables the webhook and replays the dead letters (cdp webhooks enable / replay)
    world.deliver_ctx.state.enable("crm")

    class Letters:
        def drain(self):  # type: ignore[no-untyped-def]
            yield parse_delivery(json.loads(json.dumps(dead.to_dict()))), "r-1"

        def delete(self, receipt: str) -> None:
            pass

    requeued = ListQueue()
    assert replay_dead_letters(Letters(), requeued) == {"disabled": 1}
    deliver([item for item, _ in requeued.sent], world.deliver_ctx, now=world.clock[0])
    assert receiver.deliveries == 1 and len(receiver.messages) == 1


def test_5xx_retries_follow_the_webhook_schedule_then_the_dead_letter_store(receiver) -> None:  # type: ignore[no-untyped-def]
    world = World(receiver)
    world.decide()
    receiver.fail_next(503, {}, times=8)
    [item] = [parse_delivery(i.to_dict()) for i, _ in world.queue.sent]
    now = world.clock[0]
    for _ in range(8):
        deliver([item], world.deliver_ctx, now=now)
        if not world.deliver_ctx.queue.sent:  # type: ignore[attr-defined]
            break
        item, _ = world.deliver_ctx.queue.sent.pop()  # type: ignore[attr-defined]
        now = item.not_before
    assert [d.reason for d in world.deliver_ctx.dead_letters.kept] == ["gave_up:retry"]  # type: ignore[attr-defined]
    assert len(receiver.requests) == 8


# ---------------------------------------------------------------- the crash matrix


def test_died_after_the_claim_before_queueing_the_takeover_queues_once(receiver) -> None:  # type: ignore[no-untyped-def]
    world = World(receiver)
    real_send = world.queue.send

    def die(items: Any) -> None:
        raise Crash

    world.queue.send = die  # type: ignore[method-assign]
    with pytest.raises(Crash):
        world.decide()
    world.queue.send = real_send  # type: ignore[method-assign]
    with pytest.raises(EffectInFlight):
        world.decide()  # within the hold
    world.clock[0] += 300
    assert world.decide().sent and len(world.queue.sent) == 1
    world.post_queued()
    assert receiver.deliveries == 1


def test_died_after_queueing_before_mark_sent_the_second_post_is_deduped(receiver) -> None:  # type: ignore[no-untyped-def]
    world = World(receiver)
    world.queue.crash_after = True
    with pytest.raises(Crash):
        world.decide()
    world.post_queued()  # the first queued post went out
    world.clock[0] += 300
    world.decide()  # the takeover queues it again
    report = world.post_queued()
    assert report.by_destination["crm"].duplicates == 1 and receiver.deliveries == 1


def test_a_queue_that_refuses_releases_the_claim_and_the_redelivery_queues(receiver) -> None:  # type: ignore[no-untyped-def]
    world = World(receiver)
    world.queue.fail = True
    with pytest.raises(StoreError):
        world.decide()
    world.queue.fail = False
    assert world.decide().sent  # at once: the claim was given back
    world.post_queued()
    assert receiver.deliveries == 1


def test_a_redelivered_trigger_after_the_post_is_a_duplicate(receiver) -> None:  # type: ignore[no-untyped-def]
    world = World(receiver)
    world.decide()
    world.post_queued()
    world.clock[0] += 3600
    assert world.decide().duplicates == ["campaign#checkout-to-crm#m-1"] and not world.queue.sent


def test_died_after_the_post_before_its_claim_was_marked_posts_the_same_webhook_id_again(receiver) -> None:  # type: ignore[no-untyped-def]
    world = World(receiver)
    world.decide()
    queued = [parse_delivery(i.to_dict()) for i, _ in world.queue.sent]

    class DiesAfterPost(InMemoryEffectLedger):
        def mark_sent(self, key: str, provider_id: str) -> None:
            raise Crash

    world.deliver_ctx.ledger = DiesAfterPost(clock=lambda: world.clock[0], max_attempts=10)
    with pytest.raises(Crash):
        deliver(queued, world.deliver_ctx, now=world.clock[0])
    world.clock[0] += 300
    world.deliver_ctx.ledger.mark_sent = InMemoryEffectLedger.mark_sent.__get__(world.deliver_ctx.ledger)  # type: ignore[method-assign]
    deliver(queued, world.deliver_ctx, now=world.clock[0])
    assert len(receiver.requests) == 2 and len(receiver.messages) == 1  # one webhook-id: the receiver dedupes


def test_a_trigger_post_for_an_ad_audience_destination_is_skipped(receiver) -> None:  # type: ignore[no-untyped-def]
    world = World(receiver)
    world.deliver_ctx.destinations = {"crm": parse_destination(
        "type: meta_audience\nsegments: [vip]\nsecret: m\naudience_id: '1'\n", "crm.yaml")}
    world.decide()
    assert world.post_queued().by_destination["crm"].skipped == {"not_a_webhook": 1}


@pytest.mark.parametrize("body", [
    {"kind": "trigger_post", "destination": "crm"},
    {"kind": "trigger_post", "destination": "crm", "campaign": "c", "event": "e", "message_id": "m", "at": AT,
     "profile_id": "p1", "purpose": "marketing", "properties": {"nested": {"a": 1}}},
])
def test_a_malformed_trigger_post_is_refused(body: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        parse_delivery(body)


def test_webhook_posts_neither_count_towards_nor_are_held_by_the_global_cap_of_messages() -> None:
    from datetime import timedelta

    from cdp.campaigns.eligibility import PastSend, Recipient, skip_reason

    email = parse_campaign(CAMPAIGN_TEXT.replace("channel: webhook", "channel: email").replace(
        "webhook: {destination: crm, properties: [currency, value, cart]}", "template: {subject: s, text: t}"), "e.yaml")
    person = Recipient("p1", "ada@shopper.io", {"marketing": True}, {})
    posts = [PastSend("other-hook", NOW - timedelta(hours=i + 1), channel="webhook") for i in range(5)]
    emails = [PastSend("other-mail", NOW - timedelta(hours=i + 1)) for i in range(5)]
    policy = Policy()
    assert skip_reason(email, person, now=NOW, history=posts, suppressed=(), policy=policy) is None
    assert skip_reason(email, person, now=NOW, history=emails, suppressed=(), policy=policy) == "global_cap"
    assert skip_reason(CAMPAIGN, person, now=NOW, history=emails, suppressed=(), policy=policy) is None


def test_a_trigger_carries_only_the_listed_scalar_properties_and_only_for_a_webhook_campaign() -> None:
    message = checkout()
    assert message.properties == {"currency": "EUR", "value": 42.5}
    assert TriggerMessage.from_body(json.loads(json.dumps(message.to_body()))) == message
    email = parse_campaign(CAMPAIGN_TEXT.replace("channel: webhook", "channel: email").replace(
        "webhook: {destination: crm, properties: [currency, value, cart]}", "template: {subject: s, text: t}"), "e.yaml")
    [(plain, _)] = emit_triggers([{"type": "track", "event": "Checkout Started", "messageId": "m-1", "timestamp": AT,
                                   "properties": {"currency": "EUR"}}], {"m-1": "p1"}, TriggerIndex([email]),
                                 now=NOW).messages
    assert plain.properties == {} and "properties" not in plain.to_body()["trigger"]
