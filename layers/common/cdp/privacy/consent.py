"""Consent as data: the one check every activation channel makes before it sends.

Consent arrives on events (``context.consent.categoryPreferences`` as Segment sends it,
``context.consentManagement`` as RudderStack does, or a ``Consent Updated`` track event; parsed by
:func:`cdp.identity.computed.event_consent`) and stands on the profile per purpose, ordered by when
we received it. Each channel names its purpose and asks :func:`may_contact`:

* a purpose the person granted is allowed, one they denied is not;
* a purpose they made no statement about follows their ``marketing`` answer (the umbrella: a
  campaign's ``newsletter`` purpose is refused to someone who denied marketing);
* ``ads`` (and any purpose in :data:`OPT_IN_PURPOSES`) needs an explicit grant;
* a person whose statements name no activation purpose (``analytics`` only, say) is kept out of
  every channel;
* a person who never made any statement may get the purposes that are not opt-in (email to an
  existing customer), unless a trait says they unsubscribed.

The answer is a :class:`Decision`, truthy when allowed, with a reason code for the reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cdp.identity.computed import Consent

#: Purposes no one is contacted for without a grant of their own.
OPT_IN_PURPOSES = frozenset({"ads"})

#: Other names the same purpose is sent under (Segment's example categories, older profiles).
PURPOSE_ALIASES: Mapping[str, tuple[str, ...]] = {
    "email": ("marketing",),
    "ads": ("advertising",),
}

#: The purpose each activation channel checks.
CHANNEL_PURPOSES: Mapping[str, str] = {"email": "email", "ads": "ads", "audience": "ads"}

#: The purpose whose answer stands for every purpose not stated on its own (not the opt-in ones).
UMBRELLA_PURPOSE = "marketing"

#: Purposes that concern activation (with their aliases); a person whose statements name none of
#: them (``analytics`` only, say) is kept out of every channel.
ACTIVATION_PURPOSES = frozenset({*CHANNEL_PURPOSES.values(), *(a for names in PURPOSE_ALIASES.values() for a in names)})

#: Traits by which a person left every email (set by an unsubscribe link or a CRM import).
UNSUBSCRIBE_TRAITS = ("unsubscribed", "email_opt_out")

_FALSE = {False, "false", "no", "0", "denied", "opted_out", "unsubscribed"}


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a channel may use a person's data for ``purpose``, and why."""

    allowed: bool
    purpose: str
    reason: str  # granted | denied | analytics_only | opt_in_required | not_stated | unsubscribed

    def __bool__(self) -> bool:
        return self.allowed

    def to_dict(self) -> dict[str, Any]:
        return {"allowed": self.allowed, "reason": self.reason}


def purpose_of(channel: str) -> str:
    """The purpose a channel checks (an unknown channel checks a purpose of its own name)."""
    return CHANNEL_PURPOSES.get(channel, channel)


def may_contact(subject: Consent | Mapping[str, Any], purpose: str) -> Decision:
    """May ``purpose`` use this person's data? ``subject`` is a :class:`Consent`, a profile view
    (``Profile.view()``: its ``consent`` and unsubscribe traits are read) or a bare consent map
    (purpose -> bool, or -> ``{"granted": bool}`` as the customer view shows it)."""
    purpose = purpose.strip().lower()
    consent, traits = _consent_and_traits(subject)
    if purpose == "email" and any(_truthy(traits.get(name)) for name in UNSUBSCRIBE_TRAITS):
        return Decision(False, purpose, "unsubscribed")
    for name in (purpose, *PURPOSE_ALIASES.get(purpose, ())):
        if name in consent:
            granted = consent[name]
            return Decision(granted, purpose, "granted" if granted else "denied")
    if purpose in OPT_IN_PURPOSES:
        return Decision(False, purpose, "opt_in_required")
    if UMBRELLA_PURPOSE in consent:
        granted = consent[UMBRELLA_PURPOSE]
        return Decision(granted, purpose, "granted" if granted else "denied")
    if consent and not ACTIVATION_PURPOSES.intersection(consent):
        return Decision(False, purpose, "analytics_only")
    return Decision(True, purpose, "not_stated")


def decisions(subject: Consent | Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """What every activation channel would decide for this person, by channel (for the profile API)."""
    return {channel: may_contact(subject, purpose).to_dict() for channel, purpose in sorted(CHANNEL_PURPOSES.items())
            if channel != "audience"}


def _consent_and_traits(subject: Consent | Mapping[str, Any]) -> tuple[dict[str, bool], Mapping[str, Any]]:
    if isinstance(subject, Consent):
        return dict(subject.view()), {}
    if "consent" in subject or "traits" in subject or "profile_id" in subject:
        raw = subject.get("consent") or {}
        traits = subject.get("traits") or {}
    else:
        raw, traits = subject, {}
    consent: dict[str, bool] = {}
    for purpose, held in (raw.items() if isinstance(raw, Mapping) else ()):
        value = held.get("granted", held.get("status")) if isinstance(held, Mapping) else held
        if value is not None:
            consent[str(purpose).strip().lower()] = value not in _FALSE
    return consent, traits if isinstance(traits, Mapping) else {}


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "yes", "1"))
