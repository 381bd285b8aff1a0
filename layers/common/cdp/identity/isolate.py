"""Resolve a batch so that no event fails because of another: the store's refusals are isolated.

1. Events the store cannot hold (``cdp.identity.limits``) are set apart before anything is written.
2. The rest is resolved as one batch. When the store refuses a write with a non-retryable error
   (a ``ValidationException`` the limits did not foresee), every event of that write is a suspect:
   each is resolved again on its own, in event-time order, so the innocent ones are applied and the
   one the store refuses alone is isolated with the store's reason.

Retryable errors are left as they are (``failed``): the stream redelivers those events.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cdp.identity.config import IdentityConfig
from cdp.identity.identifiers import extract
from cdp.identity.limits import storage_violation
from cdp.identity.profile import stamp
from cdp.identity.resolve import BatchOutcome, resolve_batch
from cdp.identity.store import IdentityStore


def resolve_isolating(
    events: list[dict[str, Any]], store: IdentityStore, *, config: IdentityConfig, now: datetime
) -> BatchOutcome:
    """:func:`resolve_batch`, where each event the store cannot take ends in ``isolated`` alone."""
    outcome = BatchOutcome()
    admitted: list[dict[str, Any]] = []
    for event in events:
        message_id = _message_id(event)
        reason = storage_violation(event, extract(event, config)) if message_id else None
        if message_id and reason:
            outcome.isolated[message_id] = reason
        else:
            admitted.append(event)
    batch = resolve_batch(admitted, store, config=config, now=now)
    _absorb(outcome, batch)
    by_id = {_message_id(e): e for e in admitted}
    suspects = [m for m in batch.store_refused if m in by_id]
    for message_id in sorted(suspects, key=lambda m: stamp(by_id[m], now)):
        alone = resolve_batch([by_id[message_id]], store, config=config, now=now)
        if message_id in alone.store_refused:
            outcome.isolated[message_id] = alone.store_refused[message_id]
        _absorb(outcome, alone)
    return outcome


def _message_id(event: Mapping[str, Any]) -> str:
    message_id = event.get("messageId")
    return message_id if isinstance(message_id, str) else ""


def _absorb(outcome: BatchOutcome, other: BatchOutcome) -> None:
    """Add ``other``'s results to ``outcome``; its refusals are the caller's to resolve."""
    outcome.applied += other.applied
    outcome.duplicates += other.duplicates
    outcome.failed.update(other.failed)
    outcome.rejected.update(other.rejected)
    outcome.profile_of.update(other.profile_of)
    outcome.log += other.log
    outcome.attempts += other.attempts
    outcome.created += other.created
