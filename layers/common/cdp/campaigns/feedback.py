"""What became of each campaign email: SES's event publishing (through SNS) back into the stream.

The campaign configuration set publishes DELIVERY, BOUNCE, COMPLAINT, REJECT, OPEN and CLICK
events to an SNS topic; the feedback function turns each into stream events on the person's
profile, so segments, reports and ``cdp campaigns stats`` read them from the lake like any event:

| SES event | stream events |
| --- | --- |
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
"""

from __future__ import annotations

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


@dataclass
class FeedbackReport:
    outcomes: dict[str, int] = field(default_factory=dict)
    ignored: dict[str, int] = field(default_factory=dict)  # reason -> notifications
    suppressed: list[str] = field(default_factory=list)  # hard-bounced addresses


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


def process(sns_event: Mapping[str, Any], *, sink: Any, now: Any) -> FeedbackReport:
    """Put the outcome events of every notification into the stream (collector-validated)."""
    from cdp.campaigns.stream import internal_record

    report = FeedbackReport()
    records = [internal_record(event, source_id="ses-feedback", now=now)
               for notification in notifications(sns_event) for event in outcome_events(notification, report)]
    if records:
        sink.put(records)  # raises when the stream refuses: the SNS invocation is retried
    return report
