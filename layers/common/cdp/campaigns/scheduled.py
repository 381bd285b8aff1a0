"""Scheduled automated campaigns: at each due tick, one message to every current member of the segment.

``audience: {segment: NAME, when: schedule, schedule: rate(7 days)}``. There is no rule per campaign:
the segment job's tick (one EventBridge rule, ``SegmentSchedule``) runs the segments, then
:func:`run_scheduled_campaigns` checks each scheduled campaign's own expression against its last tick
(:func:`cdp.segments.schedule.is_due`, as for segments) and, when due, fans the segment's current
membership out to the activation queue: one queue message per person (SendMessageBatch, 10 a call),
so the sending itself is spread over the activation function's invocations, never one.

The tick's run id is the tick's (the EventBridge event time): a retried tick (EventBridge retries a
failed invocation with the same event) fans out again under the same run id, and every message's
ledger key ``campaign#<name>#<run>#<profile>`` dedupes what was already sent, so a retry after a
crash sends only to those not yet sent. A tick is recorded (``record_campaign_tick``) after its fan
out, so a crash before the record makes the retry, or the next tick, fan out again.

Any audience size, bounded work per invocation: the tick queues the first page of members
(:data:`PAGE_SIZE`, in the membership table's key order) and, if there are more, one **fan-out page**
message (``campaign.fanout``: campaign, run, page number, the last profile id of the page before).
The activation function handles a page (:func:`on_fanout_page`) under a claim on
``fanout#<campaign>#<run>#<page>`` in the effect ledger: it queues that page's members, then the next
page's message, then marks the claim. A page delivered twice, or queued twice by a retried page or
tick, finds the claim ``sent`` (or held: retried later), so the chain never forks; members queued twice
are ledger duplicates (docs/architecture.md, "Scheduled campaigns: the tick's crash matrix").

The activation function sends each message through :func:`cdp.campaigns.send.deliver` (consent,
suppression, caps, quiet hours, ledger) like a segment entry: :func:`on_scheduled`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cdp.activation import EffectLedger
from cdp.campaigns.definition import Campaign
from cdp.campaigns.eligibility import Policy, Recipient, history_from_journal, next_allowed
from cdp.campaigns.entries import Deferred, ProfileReader, _hop
from cdp.campaigns.send import CampaignReport, deliver, message_key
from cdp.errors import CdpError, EffectInFlight, InvalidEvent, StoreError
from cdp.profiles.messages import MessageJournal, record_sent
from cdp.segments.membership import MembershipStore
from cdp.segments.schedule import is_due
from cdp.times import format_time, parse_time

#: The ``type`` of a scheduled campaign's queue message (a segment change has none).
MESSAGE_TYPE = "campaign.scheduled"
_FIELDS = ("campaign", "run_id", "profile_id", "at")
#: The ``type`` of a fan-out page's queue message.
FANOUT_TYPE = "campaign.fanout"
#: Members queued per page: 50 SendMessageBatch calls, a few seconds of the activation function's 60.
PAGE_SIZE = 500
#: A page's claim may be taken over this many times (each a process that died holding it): the work
#: is idempotent, so unlike an email's claim it is never given up as "outcome unknown".
PAGE_ATTEMPTS = 1000


@dataclass
class ScheduledTickReport:
    queued: dict[str, int] = field(default_factory=dict)  # campaign -> members queued by the tick (first page)
    paged: list[str] = field(default_factory=list)  # more members than a page: the next page is queued
    not_due: list[str] = field(default_factory=list)
    # Due, but its segment has never completed a run or failed at this tick (the retry sends).
    waiting: list[str] = field(default_factory=list)
    failures: dict[str, CdpError] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"queued": self.queued, "paged": self.paged, "not_due": self.not_due, "waiting": self.waiting,
                "failures": {k: f"{e.code}: {e.reason}" for k, e in self.failures.items()}}


def scheduled_campaigns(campaigns: Iterable[Campaign]) -> list[Campaign]:
    return [c for c in campaigns if c.kind == "automated" and c.audience is not None
            and c.audience.when == "schedule"]


def run_scheduled_campaigns(campaigns: Iterable[Campaign], *, store: MembershipStore,
                            enqueue: Callable[[list[dict[str, str]]], None], run_id: str, now: datetime,
                            failed_segments: Iterable[str] = (), page_size: int = PAGE_SIZE) -> ScheduledTickReport:
    """Fan each due scheduled campaign out to its segment's current members (one message each): the
    first page here, the rest by the chain of fan-out pages this starts (:func:`on_fanout_page`)."""
    report = ScheduledTickReport()
    failed = set(failed_segments)
    for campaign in scheduled_campaigns(campaigns):
        assert campaign.audience is not None
        segment = campaign.audience.segment
        try:
            last = store.last_campaign_tick(campaign.name)
            retry_of_last = last is not None and last.get("run_id") == run_id
            if last and not retry_of_last and not is_due(campaign.audience.schedule, now=now,
                                                          last_run_at=parse_time(last.get("at"))):
                report.not_due.append(campaign.name)
                continue
            if segment in failed or store.last_run(segment) is None:
                report.waiting.append(campaign.name)
                continue
            at = format_time(now)
            first = FanOutPage(campaign.name, run_id, at, page=0, after="")
            queued, more = fan_out_page(first, segment, store=store, enqueue=enqueue, page_size=page_size)
            record = {"run_id": run_id, "at": at, "queued": queued}
            store.record_campaign_tick(campaign.name, {**record, "paged": True} if more else record)
            report.queued[campaign.name] = queued
            if more:
                report.paged.append(campaign.name)
        except CdpError as exc:  # this campaign waits for the retry; the others still go out
            report.failures[campaign.name] = exc
    return report


@dataclass(frozen=True, slots=True)
class FanOutPage:
    """Page ``page`` of a tick's fan-out: the members after profile id ``after`` (page 0: from the start)."""

    campaign: str
    run_id: str
    at: str  # the tick's time, carried into every member's message
    page: int
    after: str

    def to_body(self) -> dict[str, Any]:
        return {"type": FANOUT_TYPE, "campaign": self.campaign, "run_id": self.run_id, "at": self.at,
                "page": self.page, "after": self.after}

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> FanOutPage:
        """The page a queue message names, or InvalidEvent naming the field."""
        text = {}
        for name in ("campaign", "run_id", "at", "after"):
            value = body.get(name)
            if not isinstance(value, str) or not value or len(value) > 256:  # page 0 is the tick's, never queued
                raise InvalidEvent(f"fan-out page: {name} must be a non-empty string", field=name)
            text[name] = value
        page = body.get("page")
        if not isinstance(page, int) or isinstance(page, bool) or not 1 <= page < 10**9:
            raise InvalidEvent("fan-out page: page must be a positive integer", field="page")
        return cls(text["campaign"], text["run_id"], text["at"], page, text["after"])

    @property
    def key(self) -> str:
        """The page's claim in the effect ledger: one chain per (campaign, tick)."""
        return f"fanout#{self.campaign}#{self.run_id}#{self.page}"


def fan_out_page(page: FanOutPage, segment: str, *, store: MembershipStore,
                 enqueue: Callable[[list[dict[str, Any]]], None], page_size: int = PAGE_SIZE) -> tuple[int, bool]:
    """Queue one page of members, then (if the page was full) the next page's message, in that order:
    a crash between leaves the page to be done again, never a member without a page.

    Returns (members queued, whether a next page was queued)."""
    members, last = store.members_page(segment, after=page.after or None, limit=page_size)
    bodies: list[dict[str, Any]] = [{"type": MESSAGE_TYPE, "campaign": page.campaign, "run_id": page.run_id,
                                     "profile_id": m.profile_id, "at": page.at} for m in members]
    if last is not None:
        bodies.append(FanOutPage(page.campaign, page.run_id, page.at, page.page + 1, last).to_body())
    enqueue(bodies)
    return len(members), last is not None


def on_fanout_page(body: Mapping[str, Any], *, campaigns: Iterable[Campaign], store: MembershipStore,
                   enqueue: Callable[[list[dict[str, Any]]], None], ledger: EffectLedger,
                   page_size: int = PAGE_SIZE) -> str:
    """Handle one fan-out page message once (claimed under :attr:`FanOutPage.key`); returns what was done:
    ``queued:<n>``, ``duplicate`` or ``no_campaign``. Raises EffectInFlight while another attempt holds
    the page, and any store or queue error after giving the claim back (the message is retried)."""
    page = FanOutPage.from_body(body)
    campaign = next((c for c in scheduled_campaigns(campaigns) if c.name == page.campaign), None)
    if campaign is None or campaign.audience is None:  # removed or changed kind since the tick
        return "no_campaign"
    claim = ledger.claim(page.key)
    if claim in ("pending", "exhausted"):
        raise EffectInFlight("another attempt holds this fan-out page", key=page.key)
    if claim != "acquired":
        return "duplicate"
    try:
        queued, more = fan_out_page(page, campaign.audience.segment, store=store, enqueue=enqueue,
                                    page_size=page_size)
    except Exception:
        ledger.release(page.key)  # nothing is lost by doing the page again: queued members are ledger duplicates
        raise
    # If marking fails the page is done all the same: a stray redelivery takes the claim over, harmlessly.
    with contextlib.suppress(StoreError):
        ledger.mark_sent(page.key, f"queued:{queued}{'+next' if more else ''}")
    return f"queued:{queued}"


def parse_message(body: Mapping[str, Any]) -> dict[str, str]:
    """The fields of a scheduled message, each a non-empty string, or InvalidEvent naming the field."""
    out = {}
    for name in _FIELDS:
        value = body.get(name)
        if not isinstance(value, str) or not value or len(value) > 256:
            raise InvalidEvent(f"scheduled campaign message: {name} must be a non-empty string", field=name)
        out[name] = value
    return out


def on_scheduled(body: Mapping[str, Any], *, campaigns: Iterable[Campaign], profiles: ProfileReader,
                 journal: MessageJournal, ledger: EffectLedger, setup: Any, policy: Policy, now: datetime,
                 report: CampaignReport, suppressed: Callable[[str], bool] = lambda _: False) -> list[Deferred]:
    """Send one scheduled message (campaign, tick run, person); returns it deferred if in quiet hours."""
    message = parse_message(body)
    name, run_id, profile_id = message["campaign"], message["run_id"], message["profile_id"]
    key = message_key(name, run_id, profile_id)
    campaign = next((c for c in scheduled_campaigns(campaigns) if c.name == name), None)
    if campaign is None:  # removed or changed since the tick
        report.skipped[key] = "no_campaign"
        return []
    not_before = parse_time(body.get("not_before")) if body.get("not_before") else None
    if not_before is not None and not_before > now:
        return [_hop(dict(body), not_before, now)]
    profile = profiles.get_profiles([profile_id]).get(profile_id)
    if profile is None or profile.is_tombstone:
        report.skipped[key] = "no_profile"
        return []
    recipient = Recipient.from_profile(profile.view())
    blocked = {recipient.email} if recipient.email and suppressed(recipient.email) else set()
    history = history_from_journal(journal.sent_to([profile_id]))
    # This message's own outcome (the batch's report may hold an earlier delivery of the same key).
    one = deliver(campaign, recipient, run_id=run_id, now=now, ledger=ledger, setup=setup, suppressed=blocked,
                  history=history, policy=policy)
    report.sent += one.sent
    report.duplicates += one.duplicates
    report.unrecorded += one.unrecorded
    report.skipped.update(one.skipped)
    report.failed.update(one.failed)
    if one.skipped.get(key) == "quiet_hours" and campaign.quiet_hours is not None:
        until = next_allowed(campaign.quiet_hours, recipient.traits, now, policy)
        report.deferred[key] = until
        return [_hop({**body}, until, now)]
    if one.sent:
        record_sent(journal, key=key, sent=[key], profile_id=profile_id, segment=f"campaign:{name}", run=run_id,
                    entered_at=message["at"], sent_at=format_time(now), channel=campaign.channel)
    return []
