"""Activation: turn segment entries into messages on channels, once per entry.

Per-segment email (the ``email`` section of config/activation.yaml), once per entry, through a ledger
of effects keyed ``email#<segment>#<profile>#<entry run>``. It is sent the way every campaign email is
(:func:`cdp.campaigns.send.send_email`: Jinja2 template with fallbacks, HTML autoescaped, raw MIME
through SES v2 under the configuration set, signed one-click unsubscribe) but without caps: each
entry of a consenting contact owes exactly one email. A claim is one of:

* ``pending`` — held by one attempt until ``hold_until``; a claim that is pending and expired is taken
  over (its holder died or never learnt the outcome), at most ``max_attempts - 1`` times;
* ``sent`` — the provider accepted the message (its message id is kept);
* ``failed`` — the provider refused it for good (an invalid message); never retried.

A send the provider refused before accepting (``EmailNotSent``, retryable) releases the claim at
once; an unknown outcome (``SendOutcomeUnknown``, or any unexpected error) keeps it pending so only
the expiry decides. SES has no idempotency token, so an entry whose outcome was unknown may be sent
once more after the hold expires: at most ``max_attempts`` (2) sends ever reach the provider per
entry. SES's Send event (the feedback function, :func:`cdp.campaigns.feedback.confirm_sends`) marks
the claim of a message SES accepted ``sent`` (``confirm_sent``), normally well within the hold, so
a sender that died after SES accepted is no longer sent twice. docs/architecture.md ("Exactly-once effects") has the crash matrix.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from cdp.errors import EffectInFlight, EmailNotSent, InvalidConfig, StoreError
from cdp.identity.identifiers import normalise_value
from cdp.identity.store import IdentityStore
from cdp.privacy.consent import may_contact, purpose_of
from cdp.segments.membership import Change, MembershipChange


@dataclass(frozen=True, slots=True)
class Contact:
    profile_id: str
    email: str | None
    email_consent: bool = True
    name: str | None = None
    # The profile has an email trait but no valid email identifier: it is never sent to.
    unvalidated_email: bool = False
    traits: Mapping[str, Any] = field(default_factory=dict)  # the template's variables
    # The address hard-bounced or complained (the ``email_suppressed`` trait): never emailed again.
    suppressed: bool = False


class ContactDirectory(Protocol):
    def contacts(self, profile_ids: list[str]) -> dict[str, Contact]: ...


ClaimResult = Literal["acquired", "sent", "failed", "pending", "exhausted"]


class EffectLedger(Protocol):
    """Claims on effects (``cdp.adapters.idempotency.DynamoEffectLedger``; ``InMemoryEffectLedger``).

    ``claim`` answers ``acquired`` (the caller now holds a pending claim: new, released, or taken over
    after its hold expired), ``sent`` / ``failed`` (done before), ``pending`` (another attempt holds
    it and its hold has not expired) or ``exhausted`` (pending and expired, but every allowed attempt
    was used: its outcome stays unknown and it is not sent again).
    """

    def claim(self, key: str) -> ClaimResult: ...

    def mark_sent(self, key: str, provider_id: str) -> None:
        """The provider accepted the message: the claim is ``sent`` for good."""
        ...

    def mark_failed(self, key: str, reason: str) -> None:
        """The provider refused the message for good: the claim is ``failed``."""
        ...

    def release(self, key: str) -> None:
        """Nothing was sent: the pending claim may be claimed again at once (this attempt not counted)."""
        ...

    def confirm_sent(self, key: str, provider_id: str) -> bool:
        """The provider reports it accepted a message of this claim (SES's Send event): a ``pending``
        claim becomes ``sent`` (True); a sent, failed or absent one is left as it is (False)."""
        ...


class InMemoryEffectLedger:
    """An EffectLedger in memory with the same rules as the DynamoDB one (tests, one-off runs)."""

    def __init__(self, *, hold_s: float = 300, max_attempts: int = 2,
                 clock: Callable[[], float] = time.time) -> None:
        self.hold_s = hold_s
        self.max_attempts = max_attempts
        self.clock = clock
        self.items: dict[str, dict[str, Any]] = {}

    def claim(self, key: str) -> ClaimResult:
        now = self.clock()
        item = self.items.get(key)
        if item is None or (item["state"] == "pending" and item["hold_until"] <= now
                            and item["attempts"] < self.max_attempts):
            attempts = (item or {}).get("attempts", 0) + 1
            self.items[key] = {"state": "pending", "hold_until": now + self.hold_s, "attempts": attempts}
            return "acquired"
        if item["state"] in ("sent", "failed"):
            return item["state"]  # type: ignore[no-any-return]
        return "pending" if item["hold_until"] > now else "exhausted"

    def mark_sent(self, key: str, provider_id: str) -> None:
        self.items[key] = {**self.items[key], "state": "sent", "provider_id": provider_id}

    def mark_failed(self, key: str, reason: str) -> None:
        if self.items[key]["state"] == "pending":
            self.items[key] = {**self.items[key], "state": "failed", "reason": reason}

    def release(self, key: str) -> None:
        item = self.items[key]
        if item["state"] == "pending":
            self.items[key] = {**item, "hold_until": 0, "attempts": item["attempts"] - 1}

    def confirm_sent(self, key: str, provider_id: str) -> bool:
        item = self.items.get(key)
        if item is None or item["state"] != "pending":
            return False
        self.items[key] = {**item, "state": "sent", "provider_id": provider_id}
        return True


#: The purpose a per-segment email's unsubscribe link denies, and the consent it needs.
EMAIL_PURPOSE = "email"


def load_email_templates(path: Path) -> dict[str, Any]:
    """Segment name -> email template (:class:`cdp.campaigns.definition.Template`), from the ``email``
    section of the activation config; a problem raises InvalidConfig as ``file:line: field: reason``."""
    from cdp.campaigns.definition import _template
    from cdp.marked_yaml import Ctx, load_marked

    if not path.exists():
        return {}
    doc = load_marked(path.read_text(encoding="utf-8"), str(path), InvalidConfig) or {}
    root = Ctx.root(str(path), doc, InvalidConfig)
    section = doc.get("email") if isinstance(doc, dict) else None
    if section is None:
        return {}
    ctx = root.child(doc, "email")
    if not isinstance(section, dict):
        raise ctx.fail("must map segment names to templates {subject, text, html, fallbacks}")
    return {str(segment): _template(spec, ctx.child(section, segment)) for segment, spec in section.items()}


@dataclass
class ActivationReport:
    sent: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # key -> reason
    # Refused for good by the provider (key -> provider's code); the claim is marked failed.
    failed: dict[str, str] = field(default_factory=dict)
    # Sent, but the ledger could not record it: the pending claim expires unless redelivered.
    unrecorded: list[str] = field(default_factory=list)


#: Set on a profile by the feedback function when its address hard-bounced or complained.
SUPPRESSED_TRAIT = "email_suppressed"


def email_suppressed(traits: Mapping[str, Any]) -> bool:
    return bool(traits.get(SUPPRESSED_TRAIT))


def email_skip_reason(*, email: str | None, unvalidated_email: bool, consented: bool,
                      suppressed: bool) -> str | None:
    """Why nobody may email this person, or None: the one check of every email path (per-segment
    emails here, every campaign in :func:`cdp.campaigns.eligibility.skip_reason`), in this order:
    ``no_valid_email`` / ``no_email`` (no validated ``email:`` identifier), ``no_consent`` (as
    :func:`cdp.privacy.consent.may_contact` decided for the purpose), ``suppressed`` (hard bounce or
    complaint)."""
    if not email:
        return "no_valid_email" if unvalidated_email else "no_email"
    if not consented:
        return "no_consent"
    if suppressed:
        return "suppressed"
    return None


def effect_key(change: MembershipChange) -> str:
    return f"email#{change.segment}#{change.profile_id}#{change.run_id}"


def activate_change(change: MembershipChange, *, contacts: ContactDirectory, ledger: EffectLedger,
                    setup: Any, templates: Mapping[str, Any], report: ActivationReport | None = None,
                    now: datetime | None = None) -> ActivationReport:
    """Send the entry's email once; exits and unreachable or unconsenting contacts send nothing.

    Raises ``EmailNotSent`` (retryable: claim released), ``SendOutcomeUnknown`` or any unexpected
    error (claim kept pending until it expires) and ``EffectInFlight`` (another attempt holds the
    claim): the message should be redelivered later. A permanent refusal is reported, not raised.
    """
    report = report if report is not None else ActivationReport()
    key = effect_key(change)
    if change.change is not Change.ENTERED:
        report.skipped[key] = "exited"
        return report
    template = templates.get(change.segment)
    if template is None:
        report.skipped[key] = "no_channel"
        return report
    contact = contacts.contacts([change.profile_id]).get(change.profile_id)
    reason = "no_email" if contact is None else email_skip_reason(
        email=contact.email, unvalidated_email=contact.unvalidated_email, consented=contact.email_consent,
        suppressed=contact.suppressed)
    if reason is not None or contact is None:
        report.skipped[key] = reason or "no_email"
        return report
    from cdp.campaigns.send import ledger_tags, send_email

    def send() -> str:
        return send_email(setup, to=contact.email or "", profile_id=change.profile_id, template=template,
                          traits=contact.traits, unsubscribe_from=f"segment-{change.segment}",
                          purpose=EMAIL_PURPOSE, now=now or datetime.now(UTC),
                          headers={"X-CDP-Segment": change.segment},
                          tags={"segment": change.segment, "run": change.run_id, "profile": change.profile_id,
                                "purpose": EMAIL_PURPOSE, **ledger_tags(key)})

    send_once(key, send, ledger=ledger, report=report)
    return report


def send_once(key: str, send: Callable[[], str], *, ledger: EffectLedger, report: ActivationReport) -> None:
    """Run ``send`` (one message to the provider, returning its id) at most once per ledger ``key``.

    The claim rules and the crash matrix are this module's docstring's; every channel that sends
    through a provider without an idempotency token goes through here.
    """
    claim = ledger.claim(key)
    if claim == "pending":
        raise EffectInFlight("another attempt holds this message's claim", key=key)
    if claim == "exhausted":
        report.skipped[key] = "outcome_unknown"
        return
    if claim != "acquired":  # sent or failed before
        report.duplicates.append(key)
        return
    try:
        provider_id = send()
    except EmailNotSent as exc:
        if exc.retryable:
            ledger.release(key)  # refused before accepting: nothing was sent, the retry may send
            raise
        ledger.mark_failed(key, str(exc.details.get("code") or exc.reason))
        report.failed[key] = str(exc.details.get("code") or exc.reason)
        return
    # Any other error may have happened after the provider accepted: the claim stays pending.
    try:
        ledger.mark_sent(key, provider_id)
    except StoreError:
        # Sent all the same; raising would make the redelivery send again once the hold expires.
        report.unrecorded.append(key)
    report.sent.append(key)


def validated_email(profile: Mapping[str, Any]) -> str | None:
    """The first of the profile's email identifiers that normalises as an email, else None."""
    emails = (profile.get("identifiers") or {}).get("email") or []
    for value in emails:
        text = str(value)
        email = normalise_value("email", text[len("email:"):] if text.startswith("email:") else text)
        if email:
            return email
    return None


def contact_from_profile(profile: Mapping[str, Any]) -> Contact:
    """A contact from a profile view (``Profile.view()``): validated email, name, and whether
    :func:`cdp.privacy.consent.may_contact` allows email.

    The address comes only from the profile's ``email`` identifiers (normalised and validated by
    identity resolution), never from the raw ``traits.email``.
    """
    traits = profile.get("traits") or {}
    email = validated_email(profile)
    name = traits.get("first_name") or traits.get("firstName") or traits.get("name")
    return Contact(profile_id=str(profile.get("profile_id")), email=email,
                   email_consent=bool(may_contact(profile, purpose_of(EMAIL_PURPOSE))),
                   name=name if isinstance(name, str) else None,
                   unvalidated_email=email is None and bool(traits.get("email")), traits=dict(traits),
                   suppressed=email_suppressed(traits))


class ProfileContacts:
    """Contacts read from the unified profiles."""

    def __init__(self, store: IdentityStore) -> None:
        self.store = store

    def contacts(self, profile_ids: list[str]) -> dict[str, Contact]:
        profiles = self.store.get_profiles(profile_ids)
        return {pid: contact_from_profile(p.view()) for pid, p in profiles.items() if not p.is_tombstone}
