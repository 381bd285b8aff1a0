"""Who may get a campaign message now, and if not, why (a skip reason per person).

The consent rule is :func:`cdp.privacy.consent.may_contact`, the one check every channel makes.

Reasons, in the order they are checked: ``no_email``, ``no_valid_email`` (an email trait but no
validated identifier), ``no_consent`` (the purpose denied, or ``marketing`` denied, or an
unsubscribe trait), ``suppressed`` (the address hard-bounced or complained), ``frequency_cap``
(this campaign's cap), ``global_cap`` (all campaigns' cap), ``quiet_hours`` (deferred, not dropped:
see :func:`next_allowed`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cdp.activation import email_skip_reason, email_suppressed, validated_email
from cdp.campaigns.definition import Campaign, FrequencyCap, QuietHours, valid_timezone
from cdp.privacy.consent import may_contact
from cdp.times import parse_time


@dataclass(frozen=True, slots=True)
class Recipient:
    """What the campaign needs of a profile: address, consent, traits (for the template, time zone)."""

    profile_id: str
    email: str | None
    consent: Mapping[str, Any]
    traits: Mapping[str, Any]
    unvalidated_email: bool = False
    # The address hard-bounced (the feedback function set the profile's ``email_suppressed`` trait).
    suppressed: bool = False

    @classmethod
    def from_profile(cls, profile: Mapping[str, Any]) -> Recipient:
        """From a profile view (``Profile.view()``); the address only from validated identifiers."""
        traits = dict(profile.get("traits") or {})
        email = validated_email(profile)
        consent = dict(profile.get("consent") or {})
        if traits.get("unsubscribed") is True or traits.get("email_opt_out") is True:
            consent["email"] = False
        return cls(profile_id=str(profile.get("profile_id")), email=email, consent=consent, traits=traits,
                   unvalidated_email=email is None and bool(traits.get("email")),
                   suppressed=email_suppressed(traits))


@dataclass(frozen=True, slots=True)
class Policy:
    """Rules across campaigns (config/activation.yaml): the global cap and the default time zone."""

    global_cap: FrequencyCap = FrequencyCap(max=3, days=7)
    default_timezone: str = "UTC"


DEFAULT_POLICY = Policy()


@dataclass(frozen=True, slots=True)
class PastSend:
    campaign: str
    sent_at: datetime
    key: str = ""  # the ledger key it was sent under: a redelivery of that message is no cap
    channel: str = "email"


def skip_reason(campaign: Campaign, recipient: Recipient, *, now: datetime, history: Iterable[PastSend],
                suppressed: Collection[str], policy: Policy) -> str | None:
    """Why ``recipient`` gets nothing from ``campaign`` at ``now``; None when they may.

    A webhook campaign (a trigger posted to a webhook) needs no address and is not a message to the
    person: only consent, its own cap and quiet hours apply, and it neither counts towards nor is
    held by the global cap of messages.
    """
    email = campaign.channel == "email"
    consented = bool(may_contact(recipient.consent, campaign.consent))
    if email:
        reason = email_skip_reason(email=recipient.email, unvalidated_email=recipient.unvalidated_email,
                                   consented=consented,
                                   suppressed=recipient.suppressed or recipient.email in suppressed)
        if reason is not None:
            return reason
    elif not consented:
        return "no_consent"
    past = list(history)
    if _count(past, now, campaign.frequency_cap, campaign.name) >= campaign.frequency_cap.max:
        return "frequency_cap"
    if email and _count([p for p in past if p.channel != "webhook"], now, policy.global_cap,
                        None) >= policy.global_cap.max:
        return "global_cap"
    if campaign.quiet_hours and in_quiet_hours(campaign.quiet_hours, recipient.traits, now, policy):
        return "quiet_hours"
    return None


def _count(past: list[PastSend], now: datetime, cap: FrequencyCap, campaign: str | None) -> int:
    since = now - timedelta(days=cap.days)
    return sum(1 for p in past if p.sent_at > since and (campaign is None or p.campaign == campaign))


def person_zone(quiet: QuietHours, traits: Mapping[str, Any], policy: Policy) -> ZoneInfo:
    """The person's ``timezone`` trait if it is an IANA zone, else the campaign's, else the default."""
    zone = traits.get("timezone")
    if valid_timezone(zone):
        return ZoneInfo(str(zone))
    return ZoneInfo(quiet.timezone if valid_timezone(quiet.timezone) else policy.default_timezone)


def in_quiet_hours(quiet: QuietHours, traits: Mapping[str, Any], now: datetime, policy: Policy) -> bool:
    local = now.astimezone(person_zone(quiet, traits, policy))
    return quiet.quiet_at(local.time().replace(second=0, microsecond=0))


def next_allowed(quiet: QuietHours, traits: Mapping[str, Any], now: datetime, policy: Policy) -> datetime:
    """When quiet hours end for this person (UTC): a deferred message is sent then."""
    zone = person_zone(quiet, traits, policy)
    local = now.astimezone(zone)
    end = local.replace(hour=quiet.end.hour, minute=quiet.end.minute, second=0, microsecond=0)
    if end <= local:
        end += timedelta(days=1)
    return end.astimezone(now.tzinfo)


def history_from_journal(messages: Iterable[Any]) -> list[PastSend]:
    """Past sends from the sent-message journal (:class:`cdp.profiles.messages.SentMessage`).

    Campaign messages are journalled with ``channel`` ``email`` and ``segment`` holding
    ``campaign:<name>``; the per-segment emails of earlier versions count towards the global cap.
    """
    out = []
    for message in messages:
        moment = parse_time(message.sent_at)
        if moment is None:
            continue
        segment = str(message.segment)
        out.append(PastSend(campaign=segment[len("campaign:"):] if segment.startswith("campaign:") else "",
                            sent_at=moment, key=str(message.key), channel=str(message.channel or "email")))
    return out


def load_policy(path: Any) -> Policy:
    """The ``campaigns`` section of config/activation.yaml (defaults when absent)."""
    from pathlib import Path

    from cdp.campaigns.definition import _cap
    from cdp.errors import InvalidCampaign
    from cdp.marked_yaml import Ctx, load_marked

    path = Path(path)
    if not path.exists():
        return DEFAULT_POLICY
    doc = load_marked(path.read_text(encoding="utf-8"), str(path), InvalidCampaign) or {}
    root = Ctx.root(str(path), doc, InvalidCampaign)
    section = doc.get("campaigns") if isinstance(doc, dict) else None
    if section is None:
        return DEFAULT_POLICY
    ctx = root.child(doc, "campaigns")
    if not isinstance(section, dict):
        raise ctx.fail("must be a mapping")
    for key in section:
        if key not in ("global_frequency_cap", "default_timezone"):
            raise ctx.child(section, key).fail("unknown field; expected global_frequency_cap, default_timezone")
    cap = _cap(section["global_frequency_cap"], ctx.child(section, "global_frequency_cap")) \
        if "global_frequency_cap" in section else DEFAULT_POLICY.global_cap
    zone = section.get("default_timezone", "UTC")
    if not valid_timezone(zone):
        raise ctx.child(section, "default_timezone").fail(f"not an IANA time zone: {zone!r}")
    return Policy(global_cap=cap, default_timezone=zone)
