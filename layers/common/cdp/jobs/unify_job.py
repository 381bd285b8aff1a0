"""Unify one Kinesis batch: decode, resolve identities, and say which records must be retried."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cdp.errors import CdpError
from cdp.identity.config import IdentityConfig
from cdp.identity.resolve import BatchOutcome, resolve_batch
from cdp.identity.store import IdentityStore
from cdp.segments.definition import SegmentDefinition
from cdp.segments.membership import MembershipChange, MembershipStore
from cdp.segments.realtime import evaluate_batch
from cdp.streams import DeliveredRecord, decode


@dataclass
class UnifyResult:
    outcome: BatchOutcome
    # Real-time segment entries and exits of the profiles this batch changed.
    changes: list[MembershipChange] = field(default_factory=list)
    # Sequence numbers to report as batchItemFailures: the mapping retries from the lowest.
    retry: list[str] = field(default_factory=list)
    undecodable: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RealtimeSegments:
    """What real-time segment evaluation needs: the definitions and where membership goes."""

    definitions: list[SegmentDefinition]
    membership: MembershipStore
    publish: Callable[[list[MembershipChange]], None]


def unify_records(records: list[DeliveredRecord], store: IdentityStore, *, config: IdentityConfig, now: datetime,
                  realtime: RealtimeSegments | None = None) -> UnifyResult:
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
    changes: list[MembershipChange] = []
    if realtime is not None and (outcome.applied or outcome.duplicates):
        try:
            changes = _evaluate_realtime(outcome, store, realtime, now)
        except CdpError:
            # The profile updates are done; a redelivery dedupes them and evaluates again.
            touched = (*outcome.applied, *outcome.duplicates)
            retry = [sequence_of[mid] for mid in touched if mid in sequence_of] + retry
    # An undecodable record cannot succeed: reporting it lets bounded retries hand it to the
    # on-failure destination instead of dropping it.
    return UnifyResult(outcome=outcome, changes=changes, retry=sorted({*retry, *undecodable}, key=int),
                       undecodable=undecodable)


def _evaluate_realtime(outcome: BatchOutcome, store: IdentityStore, realtime: RealtimeSegments,
                       now: datetime) -> list[MembershipChange]:
    # Duplicates too: a redelivery means the previous attempt may have stopped between the profile
    # write and the membership outbox, and only evaluating again finishes (or re-announces) it.
    run_ids: dict[str, str] = {}
    for message_id in (*outcome.applied, *outcome.duplicates):  # the first event that touched the profile
        if message_id in outcome.profile_of:
            run_ids.setdefault(outcome.profile_of[message_id], f"rt:{message_id}")
    profiles = [p.view() for p in store.get_profiles(list(run_ids)).values() if not p.is_tombstone]
    return evaluate_batch(realtime.definitions, profiles, membership=realtime.membership,
                          publish=realtime.publish, run_ids=run_ids, now=now)
