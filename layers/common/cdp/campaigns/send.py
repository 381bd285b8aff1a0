"""Sending a campaign to people, once per (campaign, run, profile), on the campaign's channel.

The ledger key is ``campaign#<name>#<run>#<profile>``: an automated campaign's run is the segment
entry's run (a re-sent entry dedupes), an
ad-hoc campaign's is the run the operator confirmed (``once`` unless told otherwise), so a retried
or repeated ``cdp campaigns send`` never sends anyone a second message. A triggered campaign's key is
``campaign#<name>#<trigger messageId>`` (:func:`cdp.campaigns.triggers.trigger_key`). The claim rules are
:func:`cdp.activation.send_once`'s (crash matrix in docs/architecture.md).

A channel is an entry of :data:`CHANNELS`: a callable that turns a rendered message for one
recipient into one provider call. ``email`` is here; ``webhook`` and ``audience`` destinations plug
into the same table.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from cdp.activation import ActivationReport, EffectLedger, send_once
from cdp.campaigns.definition import Campaign, Template
from cdp.campaigns.eligibility import DEFAULT_POLICY, PastSend, Policy, Recipient, skip_reason
from cdp.campaigns.mime import build_message
from cdp.campaigns.render import Rendered, render
from cdp.campaigns.unsubscribe import UnsubscribeLink, unsubscribe_url
from cdp.errors import InvalidCampaign


class RawEmailSender(Protocol):
    def send_raw(self, *, to: str, raw: bytes, tags: Mapping[str, str]) -> str: ...


@dataclass(frozen=True, slots=True)
class EmailSetup:
    """What every email needs besides the person: the sender, the provider, the link signing."""

    sender_address: str
    provider: RawEmailSender
    unsubscribe_base_url: str
    # The unsubscribe links' signing key, read when needed (a cached secret that may rotate).
    link_key: Callable[[], str]


@dataclass(frozen=True, slots=True)
class Outgoing:
    campaign: Campaign
    recipient: Recipient
    run_id: str
    key: str
    now: datetime
    # What the channel needs besides the person (a trigger's event time and chosen properties).
    extra: Mapping[str, Any] = field(default_factory=dict)


class DeliveryQueue(Protocol):
    def send(self, items: Any) -> None: ...


@dataclass(frozen=True, slots=True)
class WebhookSetup:
    """A webhook campaign's "provider": the destinations queue (DeliverFunction posts from it)."""

    queue: DeliveryQueue


def send_email(setup: EmailSetup, *, to: str, profile_id: str, template: Template, traits: Mapping[str, Any],
               unsubscribe_from: str, purpose: str, now: datetime, tags: Mapping[str, str],
               campaign: str | None = None, headers: Mapping[str, str] | None = None) -> str:
    """The one way an email goes out: the template rendered (HTML autoescaped, fallbacks), a signed
    expiring one-click unsubscribe link (``unsubscribe_from`` names what the person leaves, ``purpose``
    what it denies), raw MIME with ``List-Unsubscribe``/``List-Unsubscribe-Post``, SES v2 under the
    configuration set. Returns the provider's message id."""
    link = UnsubscribeLink(profile_id, unsubscribe_from, purpose)
    url = unsubscribe_url(setup.unsubscribe_base_url, link, setup.link_key(), now=now.timestamp())
    rendered = render(template, traits, unsubscribe_url=url)
    raw = build_message(sender=setup.sender_address, to=to, rendered=rendered, unsubscribe_url=url,
                        campaign=campaign, headers=headers)
    return setup.provider.send_raw(to=to, raw=raw, tags=tags)


def ledger_tags(key: str) -> dict[str, str]:
    """The ``ledger`` tag naming the message's claim, for SES's Send event to confirm it
    (:mod:`cdp.campaigns.feedback`); none for a key too long for a tag."""
    from cdp.campaigns.feedback import LEDGER_TAG, ledger_tag

    value = ledger_tag(key)
    return {LEDGER_TAG: value} if value else {}


def _send_email(message: Outgoing, setup: EmailSetup) -> str:
    campaign, recipient = message.campaign, message.recipient
    tags = {"campaign": campaign.name, "run": message.run_id, "profile": recipient.profile_id,
            "purpose": campaign.consent}
    if not message.key.startswith("test#"):  # a test send has no claim
        tags.update(ledger_tags(message.key))
    return send_email(setup, to=str(recipient.email), profile_id=recipient.profile_id, template=campaign.template,
                      traits=recipient.traits, unsubscribe_from=campaign.name, purpose=campaign.consent,
                      now=message.now, campaign=campaign.name, tags=tags)


def _post_trigger(message: Outgoing, setup: WebhookSetup) -> str:
    """Queue the trigger for its webhook destination; the post's ``webhook-id`` is the provider id.

    Queueing twice is harmless (DeliverFunction's claim and the receiver's ``webhook-id`` dedupe),
    so a failed send releases the claim (``EmailNotSent``, retryable) whatever reached the queue.
    """
    from cdp.activation.trigger_posts import TriggerPost
    from cdp.errors import EmailNotSent, StoreError

    campaign = message.campaign
    assert campaign.webhook is not None and campaign.trigger is not None
    post = TriggerPost(destination=campaign.webhook.destination, campaign=campaign.name,
                       event=campaign.trigger.event, message_id=message.run_id, at=str(message.extra.get("at", "")),
                       profile_id=message.recipient.profile_id, purpose=campaign.consent,
                       properties=dict(message.extra.get("properties") or {}))
    try:
        setup.queue.send([(post, 0)])
    except StoreError as exc:
        raise EmailNotSent("the webhook post could not be queued", retryable=True, code="enqueue") from exc
    return post.webhook_id()


#: channel -> how one message goes out (returns the provider's id). Destinations plug in here.
CHANNELS: dict[str, Callable[[Outgoing, Any], str]] = {"email": _send_email, "webhook": _post_trigger}


def message_key(campaign: str, run_id: str, profile_id: str) -> str:
    return f"campaign#{campaign}#{run_id}#{profile_id}"


@dataclass
class CampaignReport(ActivationReport):
    """An activation report plus the skip reasons counted (for the CLI, the demo, the metrics)."""

    deferred: dict[str, datetime] = field(default_factory=dict)  # quiet hours: key -> when to retry

    def skipped_by_reason(self) -> dict[str, int]:
        return dict(Counter(self.skipped.values()))


def deliver(campaign: Campaign, recipient: Recipient, *, run_id: str, now: datetime, ledger: EffectLedger,
            setup: Any, history: Iterable[PastSend] = (), suppressed: Collection[str] = (),
            policy: Policy = DEFAULT_POLICY, report: CampaignReport | None = None,
            key: str | None = None, extra: Mapping[str, Any] | None = None) -> CampaignReport:
    """Send ``campaign`` to ``recipient`` once for ``run_id`` (or the ledger ``key`` given), or record why not.

    Raises like :func:`cdp.activation.send_once` (``EmailNotSent`` retryable, ``SendOutcomeUnknown``,
    ``EffectInFlight``): the caller's queue redelivers. Quiet hours skip with reason ``quiet_hours``;
    the caller defers the message (the ledger holds no claim for it).
    """
    report = report if report is not None else CampaignReport()
    key = key or message_key(campaign.name, run_id, recipient.profile_id)
    channel = CHANNELS.get(campaign.channel)
    if channel is None:
        report.skipped[key] = "no_channel"
        return report
    # This very message, journalled by an earlier delivery, is the ledger's duplicate, not a capped send.
    history = [past for past in history if past.key != key]
    reason = skip_reason(campaign, recipient, now=now, history=history, suppressed=suppressed, policy=policy)
    if reason:
        report.skipped[key] = reason
        return report
    outgoing = Outgoing(campaign, recipient, run_id, key, now, extra or {})
    send_once(key, lambda: channel(outgoing, setup), ledger=ledger, report=report)
    return report


@dataclass
class DryRun:
    """Who would get what: recipients with their rendered subject, and counts by skip reason."""

    would_send: list[tuple[str, str, str]] = field(default_factory=list)  # (profile, email, subject)
    skipped: Counter[str] = field(default_factory=Counter)


def dry_run(campaign: Campaign, recipients: Iterable[Recipient], *, now: datetime,
            histories: Mapping[str, list[PastSend]] | None = None, suppressed: Collection[str] = (),
            policy: Policy = DEFAULT_POLICY) -> DryRun:
    """What :func:`deliver` would do for each recipient, without claiming or sending anything."""
    result = DryRun()
    for recipient in recipients:
        reason = skip_reason(campaign, recipient, now=now, history=(histories or {}).get(recipient.profile_id, ()),
                             suppressed=suppressed, policy=policy)
        if reason:
            result.skipped[reason] += 1
            continue
        rendered = preview(campaign, recipient)
        result.would_send.append((recipient.profile_id, str(recipient.email), rendered.subject))
    return result


def preview(campaign: Campaign, recipient: Recipient) -> Rendered:
    """The message as the recipient would read it (the unsubscribe link shown as a placeholder)."""
    return render(campaign.template, recipient.traits, unsubscribe_url="https://unsubscribe.invalid/preview")


def send_test(campaign: Campaign, addresses: Iterable[str], *, setup: EmailSetup, now: datetime,
              traits: Mapping[str, Any] | None = None) -> list[str]:
    """Send the campaign to ``addresses`` (the team's test inboxes): no ledger, no consent, tagged ``test``."""
    if campaign.channel != "email":
        raise InvalidCampaign(f"test sends are for email campaigns; {campaign.name} is {campaign.channel}")
    ids = []
    for address in addresses:
        recipient = Recipient(profile_id="test", email=address, consent={}, traits=dict(traits or {}))
        ids.append(_send_email(Outgoing(campaign, recipient, "test", f"test#{address}", now), setup))
    return ids
