"""Suppression: identifiers stored as SHA-256 only, checked by the collector and unify on every event.

The list is read whole (one Query) and cached for ``ttl_s`` per warm container, so checking an
event costs a few hashes and set lookups, never a read: a request's suppression reaches every
collector within ``ttl_s`` (30 s). Events already on the stream are dropped by unify and the
archive, which check the same list.

The collector checks the identifiers every event carries in fixed places (``userId``,
``anonymousId``, ``traits.email`` / ``context.traits.email``, lower-cased) without importing the
identity package (cold start); unify checks every identifier its configuration extracts.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Mapping
from hashlib import sha256
from typing import Any, Protocol

from cdp.errors import StoreError

DEFAULT_TTL_S = 30.0
#: Seconds before a failed read is tried again (fail-open lists only).
RETRY_S = 5.0


def identifier_hash(identifier: str) -> str:
    """SHA-256 of the normalised ``type:value`` (as the profile API's audit line and the sources)."""
    return hashlib.sha256(identifier.encode("utf-8")).hexdigest()


class SuppressionStore(Protocol):
    def suppressed_hashes(self) -> set[str]: ...

    def suppress(self, hashes: Iterable[str], *, request_id: str, at: str) -> None: ...

    def unsuppress(self, hashes: Iterable[str]) -> None: ...


class SuppressionList:
    """The suppressed hashes, re-read at most every ``ttl_s``.

    The cached value is one tuple (hashes, read at), replaced whole: readers on other threads see
    the old or the new list, never half of one, without a lock on the per-event path.
    """

    def __init__(self, store: SuppressionStore, *, ttl_s: float = DEFAULT_TTL_S,
                 clock: Callable[[], float] = time.monotonic, fail_open: bool = False) -> None:
        self._store, self._ttl, self._clock = store, ttl_s, clock
        self._cached: tuple[frozenset[str], float] | None = None
        self._fail_open = fail_open
        self.read_failures = 0

    def hashes(self) -> frozenset[str]:
        """The list, read again once ``ttl_s`` old. A failed read raises, or with ``fail_open`` (the
        collector) keeps the last list read (empty before the first) and tries again in ``RETRY_S``:
        unify and the archive, which fail closed, check every event again."""
        cached, now = self._cached, self._clock()
        if cached is None or now - cached[1] >= self._ttl:
            try:
                cached = (frozenset(self._store.suppressed_hashes()), now)
            except StoreError:
                if not self._fail_open:
                    raise
                self.read_failures += 1
                cached = (cached[0] if cached else frozenset(), now - self._ttl + RETRY_S)
            self._cached = cached
        return cached[0]

    def forget(self) -> None:
        self._cached = None

    def any_suppressed(self, identifiers: Iterable[str]) -> bool:
        hashes = self.hashes()
        if not hashes:
            return False
        return any(sha256(i.encode("utf-8")).hexdigest() in hashes for i in identifiers)


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text or None


def event_identifiers(event: Mapping[str, Any]) -> list[str]:
    """The identifiers an event carries in Segment's fixed places, normalised as unify does."""
    found: list[str] = []
    for kind, value in (("user_id", event.get("userId")), ("anonymous_id", event.get("anonymousId"))):
        text = _text(value)
        if text:
            found.append(f"{kind}:{text}")
    for holder in (event.get("traits"), (event.get("context") or {}).get("traits")
                   if isinstance(event.get("context"), dict) else None):
        if isinstance(holder, dict):
            email = _text(holder.get("email"))
            if email:
                found.append(f"email:{email.lower()}")
    return found


def is_suppressed(event: Mapping[str, Any], suppression: SuppressionList | None) -> bool:
    return suppression is not None and suppression.any_suppressed(event_identifiers(event))
