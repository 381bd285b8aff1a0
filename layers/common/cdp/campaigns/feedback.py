"""What became of each campaign email: SES's event publishing (through SNS) back into the stream.

The campaign configuration set publishes SEND, DELIVERY, BOUNCE, COMPLAINT, REJECT, OPEN and CLICK
events to an SNS topic; the feedback function turns each into stream events on the person's
profile, so segments, reports and ``cdp campaigns stats`` read them from the lake like any event:

| SES event | stream events |
| --- | --- |
| Send | ``Email Sent``; and the message's ledger claim (its ``ledger`` tag) confirmed ``sent`` |
| Delivery | ``Email Delivered`` |
| Bounce, Permanent | ``Email Bounced`` and an ``identify`` with ``email_suppressed: bounced`` (never emailed again) |
| Bounce, Transient / Undetermined | ``Email Bounced`` (``bounce_type`` says which; the address stays) |
| Complaint | ``Email Complained`` denying the campaign's consent purpose (an opt-out, as unsubscribing) |
| Reject | ``Email Rejected`` |
| Open / Click | ``Email Opened`` / ``Email Clicked`` (``link``) |

Each event carries ``campaign`` (a per-segment email's: ``segment-<name>``, from its ``segment``
tag), ``run`` and ``ses_message_id`` (from the message's tags) and a
messageId derived from SES's message id and the event type: SNS delivers at least once and a
redelivered notification is a duplicate in unify. The person is found by the recipient address
(``context.traits.email``), the identifier the message was sent to (:mod:`cdp.campaigns.stream`).

**Closing the unknown-outcome window.** Every email carries its effect-ledger key in the ``ledger``
tag (:func:`ledger_tag`: base64url, reversible, within SES's 256 characters of ``[A-Za-z0-9_-]``).
SES publishes a Send event once it has accepted the message, so a sender that died (or never heard
the answer) between SES accepting and ``mark_sent`` has its claim confirmed ``sent`` here, and the
redelivery finds a duplicate instead of taking the claim over. The confirmation is conditional on
the claim being ``pending`` (:meth:`cdp.activation.EffectLedger.confirm_sent`): a ``sent`` or
``failed`` claim is never rewritten and an absent one is never created. A pending claim that a
redelivery has already taken over is confirmed too: SES did accept a message of this claim, so
``sent`` is the truth whatever the new holder does next (its ``mark_sent`` keeps ``sent``; its
``release`` or ``mark_failed`` is conditional on ``pending`` and becomes a no-op), and no later
delivery sends a third time. What stays open: a Send event arriving after the hold has expired
*and* a redelivery has taken over and sent (two messages, as before).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

EVENT_NAMES = {"Delivery": "Email Delivered", "Bounce": "Email Bounced", "Complaint": "Email Complained",
               "Reject": "Email Rejected", "Open": "Email Opened", "Click": "Email Clicked",
               "Send": "Email Sent"}
#: Outcomes ``cdp campaigns stats`` counts, by event name.
OUTCOMES = {"Email Sent": "sent", "Email Delivered": "delivered", "Email Bounced": "bounced",
            "Email Complained": "complained", "Email Rejected": "rejected", "Email Opened": "opened",
            "Email Clicked": "clicked", "Unsubscribed": "unsubscribed"}
SUPPRESSED_TRAIT = "email_suppressed"
#: The message tag that carries the effect-ledger key of the message.
LEDGER_TAG = "ledger"
#: SES v2 tag values: ASCII letters, digits, ``_`` and ``-``; 256 characters at most (255 kept, as the
#: v1 reference says "less than 256").
MAX_TAG_LENGTH = 255
_LEDGER_PREFIXES = ("email#", "campaign#")


def ledger_tag(key: str) -> str | None:
    """The ``ledger`` tag value of an effect key (base64url without padding), or None when it would
    not fit SES's limit (a key over 191 bytes: the message goes untagged and keeps the old window)."""
    value = base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")
    return value if len(value) <= MAX_TAG_LENGTH else None


def key_of_tag(value: str) -> str | None:
    """The effect key a ``ledger`` tag holds, or None when it is not one of ours (hostile input)."""
    if not value or len(value) > MAX_TAG_LENGTH:
        return None
    try:
        key = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except ValueError:
        return None
    return key if key.startswith(_LEDGER_PREFIXES) and ledger_tag(key) == value else None


@dataclass
class FeedbackReport:
    outcomes: dict[str, int] = field(default_factory=dict)
    ignored: dict[str, int] = field(default_factory=dict)  # reason -> notifications
    suppressed: list[str] = field(default_factory=list)  # hard-bounced addresses
    confirmed: int = 0  # pending claims a Send event marked sent
    already: int = 0  # Send events whose claim was sent, failed or absent: left as it was


def _tag(mail: Mapping[str, Any], name: str) -> str:
    values = (mail.get("tags") or {}).get(name) or []
    return str(values[0]) if values else ""


def outcome_events(notification: Mapping[str, Any], report: FeedbackReport) -> list[dict[str, Any]]:
    """The stream events for one SES event notification (empty when it is not one of ours)."""
    kind = str(notification.get("eventType") or notification.get("notificationType") or "")
    mail = notification.get("mail")
    if kind not in EVENT_NAMES or not isinstance(mail, Mapping):
        report.ignored["not_an_ses_event"] = report.ignored.get("not_an_ses_event", 0) + 1
        return []
    # A per-segment email (tagged ``segment``) is reported as the list its unsubscribe link names.
    campaign = _tag(mail, "campaign") or (f"segment-{_tag(mail, 'segment')}" if _tag(mail, "segment") else "")
    if not campaign:
        report.ignored["no_campaign_tag"] = report.ignored.get("no_campaign_tag", 0) + 1
        return []
    ses_id = str(mail.get("messageId") or "")
    recipients = _recipients(kind, notification, mail)
    timestamp = str(_detail(kind, notification).get("timestamp") or mail.get("timestamp") or "")
    events = []
    for address in recipients:
        properties: dict[str, Any] = {"campaign": campaign, "run": _tag(mail, "run"), "ses_message_id": ses_id,
                                      "channel": "email"}
        context: dict[str, Any] = {"traits": {"email": address}}
        detail = _detail(kind, notification)
        if kind == "Bounce":
            properties["bounce_type"] = str(detail.get("bounceType") or "Undetermined")
        if kind == "Click":
            properties["link"] = str(detail.get("link") or "")
        if kind == "Complaint":
            purpose = _tag(mail, "purpose") or "email"
            context["consent"] = {"categoryPreferences": {purpose: False}}
        base = {"context": context,
                **({"timestamp": timestamp} if timestamp else {})}
        name = EVENT_NAMES[kind]
        events.append({**base, "type": "track", "event": name, "properties": properties,
                       "messageId": _message_id(ses_id, kind, address)})
        report.outcomes[OUTCOMES[name]] = report.outcomes.get(OUTCOMES[name], 0) + 1
        if kind == "Bounce" and properties["bounce_type"] == "Permanent":
            events.append({**base, "type": "identify", "traits": {SUPPRESSED_TRAIT: "bounced"},
                           "messageId": _message_id(ses_id, "suppress", address)})
            report.suppressed.append(address)
    return events


def _detail(kind: str, notification: Mapping[str, Any]) -> Mapping[str, Any]:
    detail = notification.get(kind[0].lower() + kind[1:])
    return detail if isinstance(detail, Mapping) else {}


def _recipients(kind: str, notification: Mapping[str, Any], mail: Mapping[str, Any]) -> list[str]:
    detail = _detail(kind, notification)
    if kind == "Bounce":
        found = [r.get("emailAddress") for r in detail.get("bouncedRecipients") or []]
    elif kind == "Complaint":
        found = [r.get("emailAddress") for r in detail.get("complainedRecipients") or []]
    elif kind == "Delivery":
        found = list(detail.get("recipients") or [])
    else:
        found = list(mail.get("destination") or [])
    return [str(a).strip().lower() for a in found if isinstance(a, str) and "@" in a]


def _message_id(ses_id: str, kind: str, address: str) -> str:
    return "ses-" + hashlib.sha256(f"{ses_id}|{kind}|{address}".encode()).hexdigest()[:32]


def notifications(sns_event: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    """The SES event of each SNS record (a record that is not JSON is skipped by the caller's report)."""
    for record in sns_event.get("Records") or []:
        message = ((record or {}).get("Sns") or {}).get("Message")
        try:
            value = json.loads(message) if isinstance(message, str) else None
        except ValueError:
            value = None
        yield value if isinstance(value, Mapping) else {}


def confirm_sends(notes: Iterable[Mapping[str, Any]], ledger: Any, report: FeedbackReport) -> None:
    """Each Send event's claim (its ``ledger`` tag) confirmed ``sent`` if still pending.

    A store failure raises: the SNS invocation is retried, and confirming again is a no-op.
    """
    for notification in notes:
        mail = notification.get("mail")
        if notification.get("eventType") != "Send" or not isinstance(mail, Mapping):
            continue
        key = key_of_tag(_tag(mail, LEDGER_TAG))
        ses_id = str(mail.get("messageId") or "")
        if key is None or not ses_id:
            if _tag(mail, LEDGER_TAG):
                report.ignored["bad_ledger_tag"] = report.ignored.get("bad_ledger_tag", 0) + 1
            continue
        if ledger.confirm_sent(key, ses_id):
            report.confirmed += 1
        else:
            report.already += 1


def process(sns_event: Mapping[str, Any], *, sink: Any, now: Any, ledger: Any = None) -> FeedbackReport:
    """Put the outcome events of every notification into the stream (collector-validated); with a
    ``ledger``, confirm the claim of every Send event first (:func:`confirm_sends`)."""
    from cdp.campaigns.stream import internal_record

    report = FeedbackReport()
    notes = list(notifications(sns_event))
    if ledger is not None:
        confirm_sends(notes, ledger, report)
    records = [internal_record(event, source_id="ses-feedback", now=now)
               for notification in notes for event in outcome_events(notification, report)]
    if records:
        sink.put(records)  # raises when the stream refuses: the SNS invocation is retried
    return report
