"""Behaviour-triggered campaigns: the trigger feed (unify) and the decision when the wait ends (activation).

**Feed.** Unify knows each event's profile. An applied (or re-applied: a redelivery) event whose
name and ``where`` filters match a triggered campaign becomes a :class:`TriggerMessage` on the
activation queue, delayed by what is left of the wait if that is 15 minutes at most (SQS's
longest delay), else not delayed at all. A redelivered
batch emits again; the ledger key (:func:`trigger_key`) dedupes downstream.

**Wait.** A message that arrives before its ``due`` time with more than 15 minutes left becomes an
EventBridge Scheduler one-time schedule (``at(due)``, deleted after it fires) whose target is the
activation queue; with less left, it comes back through the queue with that delay.

**Decision.** When the wait is over: the trigger's profile, followed through merges to the one
that survives; ``unless`` events read from the profile's ``last_time`` computed traits (the latest
time, max over merges: an event that arrived out of order still counts when it happened after the
trigger); then :func:`cdp.campaigns.send.deliver` (consent, suppression, caps, quiet hours, SES).

**Webhook.** A campaign with ``channel: webhook`` is decided the same way; its "send" queues the
trigger for its webhook destination (:mod:`cdp.activation.trigger_posts`), with the event
properties it lists, carried in the message from unify.

**Too old.** A trigger whose wait ended more than :data:`STALE_AFTER` ago is dropped (reason
``stale``): an imported history sends no reminder for last month's checkouts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from cdp.campaigns.definition import Campaign
from cdp.identity.config import IdentityConfig
from cdp.times import format_time, parse_time

if TYPE_CHECKING:  # unify imports this module for the feed only: the sending side loads when deciding
    from cdp.activation import EffectLedger
    from cdp.campaigns.eligibility import Policy
    from cdp.campaigns.entries import Deferred, ProfileReader
    from cdp.campaigns.send import CampaignReport
    from cdp.profiles.messages import MessageJournal

#: The body key that marks a trigger on the activation queue (membership changes have none).
BODY_KEY = "trigger"
#: SQS's longest DelaySeconds: a longer wait is an EventBridge Scheduler one-time schedule.
MAX_QUEUE_DELAY = timedelta(seconds=900)
#: A trigger whose wait ended longer ago than this is not acted on.
STALE_AFTER = timedelta(hours=24)


class MalformedTrigger(ValueError):
    """A trigger message that does not parse: it can never succeed."""


@dataclass(frozen=True, slots=True)
class TriggerMessage:
    campaign: str
    profile_id: str  # the profile unify resolved the event to (maybe merged away since)
    message_id: str  # the trigger event's
    at: str  # when the event happened (its timestamp, as unify reads it)
    due: str  # when to decide: ``at`` + the delay, or the end of quiet hours
    # A webhook campaign's chosen event properties (``webhook.properties``: scalars, non-personal).
    properties: Mapping[str, Any] = field(default_factory=dict)

    def to_body(self) -> dict[str, Any]:
        data = {"campaign": self.campaign, "profile_id": self.profile_id, "message_id": self.message_id,
                "at": self.at, "due": self.due}
        return {BODY_KEY: {**data, "properties": dict(self.properties)} if self.properties else data}

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> TriggerMessage:
        data = body.get(BODY_KEY)
        if not isinstance(data, Mapping):
            raise MalformedTrigger("no trigger object")
        values = {k: data.get(k) for k in ("campaign", "profile_id", "message_id", "at", "due")}
        bad = [k for k, v in values.items() if not isinstance(v, str) or not v or len(v) > 256]
        if bad or parse_time(values["at"]) is None or parse_time(values["due"]) is None:
            raise MalformedTrigger(f"bad fields: {', '.join(bad) or 'at/due'}")
        properties = data.get("properties") or {}
        from cdp.activation.trigger_posts import MAX_PROPERTIES, is_scalar

        if not isinstance(properties, Mapping) or len(properties) > MAX_PROPERTIES or not all(
                isinstance(k, str) and is_scalar(v) for k, v in properties.items()):
            raise MalformedTrigger("bad fields: properties")
        return cls(**values, properties=dict(properties))  # type: ignore[arg-type]


def trigger_key(campaign: str, message_id: str) -> str:
    """The ledger key of a trigger's message: one event gives one message per campaign at most.

    The profile is left out on purpose: a redelivered batch after a merge resolves the same event
    to the surviving profile, and the key must not change with it.
    """
    return f"campaign#{campaign}#{message_id}"


def schedule_name(message: TriggerMessage) -> str:
    """A deterministic name (Scheduler's 64 characters, [0-9A-Za-z_.-]): a redelivery schedules nothing new."""
    digest = hashlib.sha256(f"{message.campaign}|{message.message_id}|{message.due}".encode()).hexdigest()
    return f"trigger-{digest[:48]}"


class TriggerIndex:
    """Triggered campaigns by event name: one dictionary lookup per event in unify."""

    def __init__(self, campaigns: Iterable[Campaign]) -> None:
        self.by_event: dict[str, list[Campaign]] = {}
        for campaign in campaigns:
            if campaign.kind == "triggered" and campaign.trigger is not None:
                self.by_event.setdefault(campaign.trigger.event, []).append(campaign)

    def __bool__(self) -> bool:
        return bool(self.by_event)

    def matching(self, event: Mapping[str, Any]) -> list[Campaign]:
        name = event.get("event")
        found = self.by_event.get(name) if isinstance(name, str) else None
        return [c for c in found if c.trigger is not None and c.trigger.matches(event)] if found else []


@dataclass
class Emitted:
    messages: list[tuple[TriggerMessage, int]]  # (message, DelaySeconds)
    stale: int = 0


def emit_triggers(events: Iterable[Mapping[str, Any]], profile_of: Mapping[str, str], index: TriggerIndex, *,
                  now: datetime) -> Emitted:
    """The trigger messages of a unified batch: events that reached a profile and match a campaign."""
    from cdp.activation.trigger_posts import pick_properties
    from cdp.identity.profile import event_time

    out = Emitted([])
    for event in events:
        campaigns = index.matching(event)
        message_id = event.get("messageId")
        profile_id = profile_of.get(str(message_id)) if campaigns else None
        if not campaigns or profile_id is None or not isinstance(message_id, str):
            continue
        at = parse_time(event_time(event, now)) or now
        for campaign in campaigns:
            assert campaign.trigger is not None
            due = at + timedelta(minutes=campaign.trigger.delay_minutes)
            if now - due > STALE_AFTER:
                out.stale += 1
                continue
            chosen = (pick_properties(event.get("properties"), campaign.webhook.properties)
                      if campaign.webhook is not None else {})
            message = TriggerMessage(campaign.name, profile_id, message_id, format_time(at), format_time(due),
                                     chosen)
            # A wait the queue cannot hold is handed over at once: activation makes it a schedule.
            out.messages.append((message, 0 if due - now > MAX_QUEUE_DELAY else _delay(due, now)))
    return out


def _delay(due: datetime, now: datetime) -> int:
    left = (due - now).total_seconds()
    return 0 if left <= 0 else min(int(MAX_QUEUE_DELAY.total_seconds()), int(left) + 1)


def unless_traits(campaigns: Iterable[Campaign], config: IdentityConfig) -> dict[str, str]:
    """Event name -> the ``last_time`` computed trait that remembers it, for every ``unless`` event.

    Raises KeyError naming an ``unless`` event no such trait keeps (``cdp campaigns validate`` says so first).
    """
    keeps = {t.event: t.name for t in config.computed_traits if t.kind == "last_time" and t.type == "track" and t.event}
    found = {}
    for campaign in campaigns:
        for event in campaign.trigger.unless if campaign.trigger else ():
            if event not in keeps:
                raise KeyError(event)
            found[event] = keeps[event]
    return found


@dataclass(frozen=True)
class TriggerContext:
    """What the decision needs besides the message; stores are ports (fakes in tests)."""

    campaigns: Mapping[str, Campaign]
    unless: Mapping[str, str]  # event name -> computed trait (unless_traits)
    profiles: ProfileReader
    journal: MessageJournal
    ledger: EffectLedger
    setup: Any
    policy: Policy
    # Creates a one-time schedule that puts ``body`` on the activation queue at ``due`` (idempotent by name).
    schedule: Callable[[str, dict[str, Any], datetime], None]
    suppressed: Callable[[str], bool] = lambda _: False
    # A webhook campaign's setup (:class:`cdp.campaigns.send.WebhookSetup`: the destinations queue).
    webhooks: Any = None


def on_trigger(body: Mapping[str, Any], ctx: TriggerContext, *, now: datetime,
               report: CampaignReport) -> list[Deferred]:
    """Wait on, or decide, one trigger. Returns the messages to put back on the queue with a delay."""
    from cdp.campaigns.eligibility import Recipient, history_from_journal, next_allowed
    from cdp.campaigns.send import deliver
    from cdp.identity.lookup import live_profile

    try:
        message = TriggerMessage.from_body(body)
    except MalformedTrigger:  # hostile or broken input never succeeds: counted, not retried
        report.skipped[f"malformed#{len(report.skipped)}"] = "malformed"
        return []
    key = trigger_key(message.campaign, message.message_id)
    campaign = ctx.campaigns.get(message.campaign)
    if campaign is None or campaign.kind != "triggered" or campaign.trigger is None:
        report.skipped[key] = "no_campaign"  # removed or changed since the event
        return []
    due = parse_time(message.due)
    assert due is not None
    if due > now:
        return _wait(message, due, now, ctx, report, key)
    if now - due > STALE_AFTER:
        report.skipped[key] = "stale"
        return []
    profile = live_profile(message.profile_id, ctx.profiles)  # followed through merges since
    if profile is None:
        report.skipped[key] = "no_profile"
        return []
    if _cancelled(campaign, profile, message, ctx.unless):
        report.skipped[key] = "cancelled_unless"
        return []
    recipient = Recipient.from_profile(profile.view())
    history = history_from_journal(ctx.journal.sent_to([recipient.profile_id]))
    blocked = {recipient.email} if recipient.email and ctx.suppressed(recipient.email) else set()
    before = len(report.sent)
    deliver(campaign, recipient, run_id=message.message_id, now=now, ledger=ctx.ledger,
            setup=ctx.webhooks if campaign.channel == "webhook" else ctx.setup,
            history=history, suppressed=blocked, policy=ctx.policy, report=report, key=key,
            extra={"at": message.at, "properties": message.properties})
    if report.skipped.get(key) == "quiet_hours" and campaign.quiet_hours is not None:
        # Decided again when quiet hours end (unless is checked again then).
        until = next_allowed(campaign.quiet_hours, recipient.traits, now, ctx.policy)
        del report.skipped[key]
        later = TriggerMessage(message.campaign, message.profile_id, message.message_id, message.at,
                               format_time(until), message.properties)
        return _wait(later, until, now, ctx, report, key)
    if len(report.sent) > before:
        from cdp.profiles.messages import record_sent

        # Best effort (a failure is logged): the message went out and its claim holds.
        record_sent(ctx.journal, key=key, sent=[key], profile_id=recipient.profile_id,
                    segment=f"campaign:{campaign.name}", run=message.message_id, entered_at=message.at,
                    sent_at=format_time(now), channel=campaign.channel)
    return []


def _wait(message: TriggerMessage, due: datetime, now: datetime, ctx: TriggerContext, report: CampaignReport,
          key: str) -> list[Deferred]:
    from cdp.campaigns.entries import Deferred

    report.deferred[key] = due
    if due - now > MAX_QUEUE_DELAY:
        ctx.schedule(schedule_name(message), message.to_body(), due)
        return []
    return [Deferred(body=message.to_body(), delay_seconds=_delay(due, now))]


def _cancelled(campaign: Campaign, profile: Any, message: TriggerMessage, unless: Mapping[str, str]) -> bool:
    assert campaign.trigger is not None
    values = profile.computed.values
    for event in campaign.trigger.unless:
        seen = values.get(unless.get(event, ""))
        # The same instant counts as "since": an order stamped with the checkout's time cancels it.
        if isinstance(seen, str) and seen >= message.at:
            return True
    return False
