"""Ad audiences: segment membership kept in step with Meta Custom Audiences and Google Customer Match.

``normalise`` turns a profile into each platform's hashed keys; ``meta`` and ``google`` are small
typed clients of the two APIs; ``sync`` applies membership changes once each (effect ledger) and
rebuilds an audience (``resync``). Only people with ``ads`` consent are ever sent
(:func:`cdp.activation.audiences.sync.may_send_ads`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cdp.activation.audiences.normalise import PersonKeys


class Transport(Protocol):
    """What the clients need of HTTP (``cdp.adapters.http.Urllib3Transport``; fakes in tests)."""

    def request(self, method: str, url: str, *, headers: dict[str, str], body: bytes) -> object: ...


@dataclass(frozen=True, slots=True)
class Upload:
    """What the platform said about one request."""

    request_id: str
    received: int
    invalid: int = 0


#: One person as the platform is sent them: their normalised, hashed keys (a Meta ``data`` row, or
#: Google's ``userIdentifiers``). JSON-shaped, so what was sent can be kept and sent again to remove.
Hashed = Any


class AudiencePlatform(Protocol):
    """One audience on one platform. Adds and removes are idempotent there (a set of hashed keys)."""

    max_batch: int

    def hashed(self, person: PersonKeys) -> Hashed | None:
        """The person's keys as this platform is sent them, or None when they cannot be matched."""
        ...

    def send(self, op: str, members: Sequence[Hashed], *, session: int | None = None, batch_seq: int = 1,
             last: bool = True, estimated_total: int | None = None) -> Upload:
        """``op`` is ``add`` or ``remove``; ``members`` are :meth:`hashed` values."""
        ...

    def add(self, people: Sequence[PersonKeys], *, session: int | None = None, batch_seq: int = 1,
            last: bool = True, estimated_total: int | None = None) -> Upload: ...

    def remove(self, people: Sequence[PersonKeys], *, session: int | None = None, batch_seq: int = 1,
               last: bool = True, estimated_total: int | None = None) -> Upload: ...
