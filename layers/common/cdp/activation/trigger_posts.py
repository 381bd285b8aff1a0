"""A behaviour trigger as a webhook source: a triggered campaign with ``channel: webhook``.

The campaign decides (trigger, wait, ``unless``, consent, caps, quiet hours, its ledger key
``campaign#<name>#<trigger messageId>``) exactly as an email campaign does; instead of an email,
its "send" puts one :class:`TriggerPost` on the destinations queue for the webhook destination the
campaign names. DeliverFunction then posts it with the segment-change webhooks' machinery (Standard
Webhooks signing, claims ``wh#<destination>#trigger|<campaign>|<messageId>``, backoff with jitter,
``Retry-After``/429/5xx, 410 disabling, the dead-letter store, ``cdp webhooks replay``).

Payload (``webhook-id`` stable per destination and trigger, so a repeat is deduped by the receiver)::

    {"type": "campaign.triggered", "timestamp": "<event time>",
     "data": {"campaign": "...", "event": "Checkout Started", "message_id": "<trigger messageId>",
              "event_time": "<event time>", "profile_id": "...", "properties": {"currency": "EUR"}}}

``properties`` holds only the event properties the campaign lists (``webhook.properties``), whose
names are checked not to be personal data when the campaign is validated, and only scalar values.
The person's consent for the campaign's purpose is checked when the campaign decides and again just
before each post (a retry may come hours later): a withdrawal in between posts nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: The ``kind`` of a trigger post on the destinations queue (a membership change has none).
KIND = "trigger_post"
MAX_PROPERTIES = 20
MAX_TEXT = 256
#: Words of a property name that mark personal data: such a property never leaves in a payload.
PII_WORDS = frozenset({
    "email", "mail", "phone", "mobile", "tel", "fax", "name", "firstname", "lastname", "fullname", "surname",
    "address", "street", "city", "zip", "zipcode", "postcode", "postal", "ip", "birthday", "birthdate", "dob",
    "age", "gender", "ssn", "passport", "iban", "card", "cc", "password", "token", "secret", "lat", "lng",
    "lon", "latitude", "longitude", "location", "geo", "device", "anonymousid", "userid"})


def personal_words(name: str) -> set[str]:
    """The words of a property name that mark personal data (``billingEmail`` -> {"email"})."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name).lower()
    words = {w for w in re.split(r"[^a-z0-9]+", spaced) if w}
    joined = re.sub(r"[^a-z0-9]", "", name.lower())
    return (words | ({joined} if joined in PII_WORDS else set())) & PII_WORDS


def pick_properties(properties: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """The listed properties of an event that hold scalars (text up to 256 characters); the rest left out."""
    if not isinstance(properties, Mapping):
        return {}
    return {name: properties[name] for name in names if name in properties and is_scalar(properties[name])}


def is_scalar(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) <= MAX_TEXT
    return value is None or isinstance(value, bool | int | float)


class MalformedPost(ValueError):
    """A trigger post on the queue that does not parse (hostile or broken): never retried."""


@dataclass(frozen=True, slots=True)
class TriggerPost:
    destination: str | None
    campaign: str
    event: str
    message_id: str  # the trigger event's messageId
    at: str  # the event's time
    profile_id: str
    purpose: str  # the campaign's consent purpose, checked again before posting
    properties: Mapping[str, Any] = field(default_factory=dict)
    attempt: int = 0
    not_before: float = 0.0
    reason: str = ""

    @property
    def dedupe_key(self) -> str:
        return f"trigger|{self.campaign}|{self.message_id}"

    def webhook_id(self) -> str:
        """Stable across retries, redeliveries and merges of one trigger to one destination."""
        return "msg_" + hashlib.sha256(f"{self.destination}|{self.dedupe_key}".encode()).hexdigest()[:32]

    def payload(self) -> bytes:
        body = {"type": "campaign.triggered", "timestamp": self.at,
                "data": {"campaign": self.campaign, "event": self.event, "message_id": self.message_id,
                         "event_time": self.at, "profile_id": self.profile_id,
                         "properties": dict(self.properties)}}
        return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": KIND, "destination": self.destination, "campaign": self.campaign,
                                "event": self.event, "message_id": self.message_id, "at": self.at,
                                "profile_id": self.profile_id, "purpose": self.purpose,
                                "properties": dict(self.properties), "attempt": self.attempt,
                                "not_before": self.not_before}
        if self.reason:
            data["reason"] = self.reason
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TriggerPost:
        names = ("destination", "campaign", "event", "message_id", "at", "profile_id", "purpose")
        values = {k: data.get(k) for k in names}
        bad = [k for k, v in values.items() if not isinstance(v, str) or not v or len(v) > MAX_TEXT]
        properties = data.get("properties") or {}
        if not isinstance(properties, Mapping) or len(properties) > MAX_PROPERTIES or not all(
                isinstance(k, str) and is_scalar(v) for k, v in properties.items()):
            bad.append("properties")
        if bad:
            raise MalformedPost(f"bad fields: {', '.join(bad)}")
        try:
            attempt, not_before = int(data.get("attempt", 0)), float(data.get("not_before", 0.0))
        except (TypeError, ValueError) as exc:
            raise MalformedPost("bad fields: attempt/not_before") from exc
        return cls(**values, properties=dict(properties), attempt=attempt,  # type: ignore[arg-type]
                   not_before=not_before, reason=str(data.get("reason", "")))
