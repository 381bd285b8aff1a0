"""Fakes the email tests share: a process that dies (anywhere, or right after SES accepted), a clock,
and an SES that keeps what it accepted."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cdp.activation import InMemoryEffectLedger


class Crash(BaseException):
    """The process dies here: nothing after it runs (not an Exception, so no handler sees it)."""


class SentThenCrash(InMemoryEffectLedger):
    """A ledger whose process dies between SES accepting a message and ``mark_sent`` (once)."""

    def mark_sent(self, key: str, provider_id: str) -> None:
        if not getattr(self, "crashed", False):
            self.crashed = True
            raise Crash
        super().mark_sent(key, provider_id)


class Clock:
    """A clock the test moves (seconds)."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True, slots=True)
class Accepted:
    ses_id: str
    to: str
    raw: bytes
    tags: dict[str, str]  # what SES's events for the message carry


class RecordingSes:
    """An SES that keeps every message it accepted. ``errors`` are raised by the next calls, after
    SES accepted the message if ``accepted_then`` (the answer lost on the way back)."""

    def __init__(self, *errors: BaseException, accepted_then: bool = False) -> None:
        self.accepted: list[Accepted] = []
        self.errors = list(errors)
        self.accepted_then = accepted_then

    def send_raw(self, *, to: str, raw: bytes, tags: Mapping[str, str]) -> str:
        error = self.errors.pop(0) if self.errors else None
        if error is None or self.accepted_then:
            self.accepted.append(Accepted(f"ses-{len(self.accepted) + 1}", to, raw, dict(tags)))
        if error is not None:
            raise error
        return self.accepted[-1].ses_id

    @property
    def raw(self) -> list[bytes]:
        return [a.raw for a in self.accepted]

    @property
    def to(self) -> list[str]:
        return [a.to for a in self.accepted]
