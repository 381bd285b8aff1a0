"""In-memory ports for the destination tests (queues, dead letters, profiles)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cdp.activation.audiences.google import GoogleAudience
from cdp.activation.audiences.meta import MetaAudience
from cdp.activation.destinations import Delivery, Destination
from cdp.activation.webhooks import Webhook


@dataclass
class ListQueue:
    sent: list[tuple[Delivery, int]] = field(default_factory=list)

    def send(self, items: Sequence[tuple[Delivery, int]]) -> None:
        self.sent.extend(items)


@dataclass
class ListDeadLetters:
    kept: list[Delivery] = field(default_factory=list)

    def put(self, items: Sequence[Delivery]) -> None:
        self.kept.extend(items)


@dataclass
class DictProfiles:
    profiles: dict[str, Mapping[str, Any]] = field(default_factory=dict)

    merged: dict[str, str] = field(default_factory=dict)  # merged-away id -> survivor

    def views(self, profile_ids: list[str]) -> dict[str, Mapping[str, Any]]:
        return {pid: self.profiles[pid] for pid in profile_ids if pid in self.profiles}

    def merged_into(self, profile_ids: list[str]) -> dict[str, str]:
        return {pid: self.merged[pid] for pid in profile_ids if pid in self.merged}


def person(pid: str, *, ads: bool | None = True, email: str | None = None) -> dict[str, Any]:
    consent = {} if ads is None else {"ads": ads}
    return {"profile_id": pid, "identifiers": {"email": [email or f"{pid}@example.com"]},
            "traits": {"first_name": "Ann", "last_name": "Lee"}, "consent": consent}


class FakeTargets:
    """Clients pointed at the loopback fakes (what SecretTargets builds from secrets on AWS)."""

    def __init__(self, transport: Any, *, meta_url: str = "", google_url: str = "", secrets: dict[str, str] | None = None,
                 meta_token: str = "meta-token", google_token: str = "google-token") -> None:
        self.transport = transport
        self.meta_url, self.google_url = meta_url, google_url
        self.secrets = secrets or {}
        self.meta_token, self.google_token = meta_token, google_token

    def audience(self, destination: Destination) -> Any:
        if destination.type == "meta_audience":
            return MetaAudience(destination.options["audience_id"], self.meta_token, self.transport, base_url=self.meta_url)
        return GoogleAudience(destination.options["account_id"], destination.options["user_list_id"],
                              self.google_token, self.transport, base_url=self.google_url)

    def webhook(self, destination: Destination) -> Webhook:
        return Webhook(destination.name, destination.options["url"], self.secrets[destination.secret])
