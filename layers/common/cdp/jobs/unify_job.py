"""Unify one Kinesis batch: decode, resolve identities, and say which records must be retried."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cdp.identity.config import IdentityConfig
from cdp.identity.resolve import BatchOutcome, resolve_batch
from cdp.streams import StreamRecord, decode


@dataclass
class UnifyResult:
    outcome: BatchOutcome
    # Sequence numbers to report as batchItemFailures: the mapping retries from the lowest.
    retry: list[str] = field(default_factory=list)
    undecodable: list[str] = field(default_factory=list)


def unify_records(records: list[StreamRecord], store: Any, *, config: IdentityConfig, now: datetime) -> UnifyResult:
    events: list[dict[str, Any]] = []
    sequence_of: dict[str, str] = {}
    undecodable: list[str] = []
    for record in records:
        event = decode(record)
        if event is None:
            undecodable.append(record.sequence_number)
            continue
        events.append(event)
        sequence_of.setdefault(str(event.get("messageId")), record.sequence_number)
    outcome = resolve_batch(events, store, config=config, now=now)
    retry = [sequence_of[mid] for mid in outcome.failed if mid in sequence_of]
    # An undecodable record cannot succeed: reporting it lets bounded retries hand it to the
    # on-failure destination instead of dropping it.
    return UnifyResult(outcome=outcome, retry=sorted([*retry, *undecodable], key=int), undecodable=undecodable)
