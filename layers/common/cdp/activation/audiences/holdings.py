"""What each ad audience holds: per (destination, profile), the hashed keys we sent it.

The platforms' audiences cannot be listed, so removing someone needs the keys that were sent, not
the profile's keys of today (an email may have changed since). The record is written **before** an
add and deleted **after** a remove, so it always holds at least what the platform holds: a crash
anywhere leaves a record of keys that may or may not be there, and removing keys that are not in
an audience is a no-op. ``AudienceHoldingsTable`` keeps them (hashes only; encrypted with the stack
key; an erasure deletes a person's records).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

from cdp.activation.audiences import Hashed


class Holdings(Protocol):
    def held(self, destination: str, profile_ids: Sequence[str]) -> dict[str, list[Hashed]]:
        """The hashed members sent (and not yet removed) per profile id; absent ids hold nothing."""
        ...

    def put(self, destination: str, items: Iterable[tuple[str, list[Hashed]]]) -> None:
        """Set what each profile holds (an empty list deletes its record)."""
        ...

    def profiles(self, destination: str) -> Iterator[str]:
        """Every profile id with a record for ``destination`` (a resync removes those not wanted)."""
        ...


class InMemoryHoldings:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str], list[Any]] = {}

    def held(self, destination: str, profile_ids: Sequence[str]) -> dict[str, list[Hashed]]:
        return {pid: list(v) for pid in profile_ids if (v := self.items.get((destination, pid)))}

    def put(self, destination: str, items: Iterable[tuple[str, list[Hashed]]]) -> None:
        for pid, sent in items:
            if sent:
                self.items[(destination, pid)] = list(sent)
            else:
                self.items.pop((destination, pid), None)

    def profiles(self, destination: str) -> Iterator[str]:
        return iter(sorted(pid for d, pid in self.items if d == destination))
