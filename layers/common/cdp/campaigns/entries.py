"""Automated campaigns on segment entry: one message per (campaign, entry run, person).

The activation queue carries segment membership changes (:class:`MembershipChange`). An entry into
a segment sends every automated ``when: entry`` campaign of that segment; a person in quiet hours
is deferred: the change comes back, for that campaign only, with ``not_before`` (the end of their
quiet hours). SQS delays a message 15 minutes at most, so a longer wait hops: each delivery before
``not_before`` re-enqueues the message with the remaining delay (at most 900 s). The claim is only
taken when the message is finally sent, so a duplicate hop is a ledger duplicate, never a second email.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from cdp.activation import EffectLedger
from cdp.campaigns.definition import Campaign
from cdp.campaigns.eligibility import Policy, Recipient, history_from_journal, next_allowed
from cdp.campaigns.send import CampaignReport, deliver, message_key
from cdp.profiles.messages import MessageJournal
from cdp.segments.membership import Change, MembershipChange
from cdp.times import format_time, parse_time

#: SQS's longest DelaySeconds.
MAX_HOP_SECONDS = 900


class ProfileReader(Protocol):
    def get_profiles(self, profile_ids: Collection[str]) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Deferred:
    """A change to deliver again, for one campaign, not before ``not_before`` (UTC)."""

    body: dict[str, str]
    delay_seconds: int


def entry_campaigns(campaigns: Iterable[Campaign], segment: str) -> list[Campaign]:
    return [c for c in campaigns if c.kind == "automated" and c.audience is not None
            and c.audience.when == "entry" and c.audience.segment == segment]


def on_entry(body: Mapping[str, Any], *, campaigns: Iterable[Campaign], profiles: ProfileReader,
             journal: MessageJournal, ledger: EffectLedger, setup: Any, policy: Policy, now: datetime,
             report: CampaignReport, suppressed: Callable[[str], bool] = lambda _: False) -> list[Deferred]:
    """Send the entry's campaigns (or the one campaign a deferred message names). Returns deferrals."""
    change = MembershipChange.from_dict(body)
    if change.change is not Change.ENTERED:
        return []
    wanted = entry_campaigns(campaigns, change.segment)
    only = body.get("campaign")
    if only:
        wanted = [c for c in wanted if c.name == only]
    not_before = parse_time(body.get("not_before")) if body.get("not_before") else None
    if not_before is not None and not_before > now:
        return [_hop(dict(body), not_before, now)]
    if not wanted:
        return []
    profile = profiles.get_profiles([change.profile_id]).get(change.profile_id)
    if profile is None or profile.is_tombstone:
        for campaign in wanted:
            report.skipped[message_key(campaign.name, change.run_id, change.profile_id)] = "no_profile"
        return []
    recipient = Recipient.from_profile(profile.view())
    history = history_from_journal(journal.sent_to([change.profile_id]))
    blocked = {recipient.email} if recipient.email and suppressed(recipient.email) else set()
    deferred: list[Deferred] = []
    for campaign in wanted:
        before = len(report.sent)
        deliver(campaign, recipient, run_id=change.run_id, now=now, ledger=ledger, setup=setup, history=history,
                suppressed=blocked, policy=policy, report=report)
        key = message_key(campaign.name, change.run_id, change.profile_id)
        if report.skipped.get(key) == "quiet_hours" and campaign.quiet_hours is not None:
            until = next_allowed(campaign.quiet_hours, recipient.traits, now, policy)
            report.deferred[key] = until
            deferred.append(_hop({**change.to_dict(), "campaign": campaign.name}, until, now))
        elif len(report.sent) > before:
            _journal(journal, key, change, campaign, now)
    return deferred


def _hop(body: dict[str, Any], not_before: datetime, now: datetime) -> Deferred:
    body["not_before"] = format_time(not_before)
    wait = int((not_before - now).total_seconds()) + 1
    return Deferred(body=body, delay_seconds=max(0, min(MAX_HOP_SECONDS, wait)))


def _journal(journal: MessageJournal, key: str, change: MembershipChange, campaign: Campaign, now: datetime) -> None:
    from cdp.profiles.messages import record_sent

    # Best effort (a failure is logged): the message went out and its claim holds.
    record_sent(journal, key=key, sent=[key], profile_id=change.profile_id, segment=f"campaign:{campaign.name}",
                run=change.run_id, entered_at=change.at, sent_at=format_time(now), channel=campaign.channel)
