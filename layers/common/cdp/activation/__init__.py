"""Activation: turn segment entries into messages on channels, once per entry.

Email through SES first. Effects are exactly-once per entry: the entry's key
``email#<segment>#<profile>#<entry run>`` is claimed with a conditional write before sending,
and released if the send fails, so a redelivered or re-sent entry never sends twice.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cdp.errors import InvalidConfig
from cdp.identity.store import IdentityStore
from cdp.segments.membership import Change, MembershipChange


@dataclass(frozen=True, slots=True)
class Contact:
    profile_id: str
    email: str | None
    email_consent: bool = True
    name: str | None = None


class ContactDirectory(Protocol):
    def contacts(self, profile_ids: list[str]) -> dict[str, Contact]: ...


class EffectLedger(Protocol):
    def claim(self, key: str) -> bool:
        """True if the key was not claimed before (and now is)."""
        ...

    def release(self, key: str) -> None: ...


class EmailSender(Protocol):
    def send(self, *, to: str, subject: str, text: str, html_body: str, tags: Mapping[str, str]) -> str: ...


@dataclass(frozen=True, slots=True)
class EmailTemplate:
    subject: str
    text: str

    def render(self, contact: Contact) -> tuple[str, str, str]:
        name = contact.name or "there"
        text = self.text.format(name=name)
        return self.subject.format(name=name), text, f"<p>{html.escape(text)}</p>"


def load_email_templates(path: Path) -> dict[str, EmailTemplate]:
    """Segment name -> email template, from the ``email`` section of the activation config."""
    import yaml

    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return {str(segment): EmailTemplate(subject=str(spec["subject"]), text=str(spec["text"]))
                for segment, spec in (data.get("email") or {}).items()}
    except (yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidConfig(f"{path.name}: each email entry needs a subject and a text ({exc})") from exc


@dataclass
class ActivationReport:
    sent: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # key -> reason


def effect_key(change: MembershipChange) -> str:
    return f"email#{change.segment}#{change.profile_id}#{change.run_id}"


def activate_change(change: MembershipChange, *, contacts: ContactDirectory, ledger: EffectLedger,
                    sender: EmailSender, templates: Mapping[str, EmailTemplate],
                    report: ActivationReport | None = None) -> ActivationReport:
    """Send the entry's email once; exits and unreachable or unconsenting contacts send nothing."""
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
    if contact is None or not contact.email:
        report.skipped[key] = "no_email"
        return report
    if not contact.email_consent:
        report.skipped[key] = "no_consent"
        return report
    if not ledger.claim(key):
        report.duplicates.append(key)
        return report
    subject, text, html_body = template.render(contact)
    try:
        sender.send(to=contact.email, subject=subject, text=text, html_body=html_body,
                    tags={"segment": change.segment, "run": change.run_id})
    except Exception:
        ledger.release(key)  # not sent: let the retry send it
        raise
    report.sent.append(key)
    return report


_FALSE = {False, "false", "no", "0", "denied", "opted_out", "unsubscribed"}


def contact_from_profile(profile: Mapping[str, Any]) -> Contact:
    """A contact from a profile view (``Profile.view()``): email, name and email consent."""
    traits = profile.get("traits") or {}
    emails = (profile.get("identifiers") or {}).get("email") or []
    email = traits.get("email") if isinstance(traits.get("email"), str) else None
    if not email and emails:
        email = emails[0].split(":", 1)[-1] if emails[0].startswith("email:") else emails[0]
    consent = profile.get("consent") or {}
    email_consent_value = consent.get("email", consent.get("marketing", True))
    if isinstance(email_consent_value, Mapping):
        email_consent_value = email_consent_value.get("granted", email_consent_value.get("status", True))
    unsubscribed = traits.get("unsubscribed") is True or traits.get("email_opt_out") is True
    name = traits.get("first_name") or traits.get("firstName") or traits.get("name")
    return Contact(profile_id=str(profile.get("profile_id")), email=email,
                   email_consent=(email_consent_value not in _FALSE) and not unsubscribed,
                   name=name if isinstance(name, str) else None)


class ProfileContacts:
    """Contacts read from the unified profiles."""

    def __init__(self, store: IdentityStore) -> None:
        self.store = store

    def contacts(self, profile_ids: list[str]) -> dict[str, Contact]:
        profiles = self.store.get_profiles(profile_ids)
        return {pid: contact_from_profile(p.view()) for pid, p in profiles.items() if not p.is_tombstone}
