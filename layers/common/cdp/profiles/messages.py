"""Messages sent to a person: a journal activation writes beside its effect ledger.

The ledger's keys (``email#<segment>#<profile>#<run>``) cannot be listed by profile and carry no
time. After a send, activation also records the message under the profile (one item per profile,
``sent#<profile_id>``, a map keyed by the ledger key), so the customer view reads a person's
messages with one BatchGetItem. Recording is idempotent (same key, same entry) and apart from the
claim: a failure to record never un-sends nor re-sends an email.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Protocol

from cdp.errors import CdpError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SentMessage:
    profile_id: str
    key: str  # the effect ledger's key
    channel: str
    segment: str
    run: str
    sent_at: str  # ISO 8601, UTC
    entered_at: str = ""  # when the membership change that caused it was decided

    def to_dict(self) -> dict[str, str]:
        return {"profile_id": self.profile_id, "key": self.key, "channel": self.channel,
                "segment": self.segment, "run": self.run, "sent_at": self.sent_at,
                "entered_at": self.entered_at}


class MessageJournal(Protocol):
    def record(self, message: SentMessage) -> None: ...

    def sent_to(self, profile_ids: Collection[str]) -> list[SentMessage]:
        """Messages recorded for any of ``profile_ids``, oldest first."""
        ...


def journal_key(profile_id: str) -> str:
    return f"sent#{profile_id}"


def record_sent(journal: MessageJournal, *, key: str, sent: Collection[str], profile_id: str,
                segment: str, run: str, entered_at: str, sent_at: str, channel: str = "email") -> bool:
    """Record the message of ledger key ``key`` if activation reported it sent. True if recorded.

    Best effort: the email went out and its claim holds, so a failure here is logged, not raised
    (raising would only make SQS redeliver a change the ledger then calls a duplicate).
    """
    if key not in sent:
        return False
    try:
        journal.record(SentMessage(profile_id=profile_id, key=key, channel=channel, segment=segment,
                                   run=run, sent_at=sent_at, entered_at=entered_at))
    except CdpError as exc:
        log.warning("could not record sent message %s: %s", key, exc.reason)
        return False
    return True


class InMemoryMessageJournal:
    def __init__(self) -> None:
        self.items: dict[str, dict[str, SentMessage]] = {}

    def record(self, message: SentMessage) -> None:
        self.items.setdefault(message.profile_id, {})[message.key] = message

    def sent_to(self, profile_ids: Collection[str]) -> list[SentMessage]:
        found = [m for pid in set(profile_ids) for m in self.items.get(pid, {}).values()]
        return sorted(found, key=_order)


def _order(message: SentMessage) -> tuple[str, str]:
    return (message.sent_at, message.key)


def sort_messages(messages: list[SentMessage]) -> list[SentMessage]:
    return sorted(messages, key=_order)


def message_from_item(profile_id: str, key: str, entry: dict[str, Any]) -> SentMessage:
    return SentMessage(profile_id=profile_id, key=key, channel=str(entry.get("channel", "")),
                       segment=str(entry.get("segment", "")), run=str(entry.get("run", "")),
                       sent_at=str(entry.get("sent_at", "")), entered_at=str(entry.get("entered_at", "")))
