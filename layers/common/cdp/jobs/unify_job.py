"""Unify one Kinesis batch: decode, resolve identities, and say which records must be retried."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cdp.campaigns.triggers import Emitted, TriggerIndex, TriggerMessage, emit_triggers
from cdp.errors import CdpError, StoreError
from cdp.failures import FailedRecord, FailureStore
from cdp.identity.computed import event_consent
from cdp.identity.config import IdentityConfig
from cdp.identity.identifiers import extract
from cdp.identity.isolate import resolve_isolating
from cdp.identity.resolve import BatchOutcome
from cdp.identity.store import IdentityStore
from cdp.privacy.suppression import SuppressionList, event_identifiers
from cdp.segments.definition import SegmentDefinition
from cdp.segments.membership import MembershipChange, MembershipStore
from cdp.segments.realtime import evaluate_batch
from cdp.streams import DeliveredRecord, decode
from cdp.times import format_time

#: The function name under which unify keeps its failure records (failures/unify/...).
FUNCTION = "unify"


@dataclass
class UnifyResult:
    outcome: BatchOutcome
    # Real-time segment entries and exits of the profiles this batch changed.
    changes: list[MembershipChange] = field(default_factory=list)
    # Sequence numbers to report as batchItemFailures: the mapping retries from the lowest.
    retry: list[str] = field(default_factory=list)
    undecodable: list[str] = field(default_factory=list)
    # What this delivery wrote to the failure store (isolated records, and retried ones).
    kept: list[FailedRecord] = field(default_factory=list)
    # Events about a suppressed person (a privacy request): dropped and counted, never applied.
    suppressed: int = 0
    # Triggered campaigns: trigger messages published, and triggers too old to act on (dropped).
    triggers: int = 0
    triggers_stale: int = 0


@dataclass(frozen=True)
class RealtimeSegments:
    """What real-time segment evaluation needs: the definitions and where membership goes."""

    definitions: list[SegmentDefinition]
    membership: MembershipStore
    publish: Callable[[list[MembershipChange]], None]
    # Profiles whose ``ads`` or ``marketing`` consent an event stated: the ad audiences reconcile them
    # (cdp.activation.destinations.Reconcile), so a withdrawal takes the person out at once.
    consent_signal: Callable[[list[str]], None] | None = None


#: Purposes whose statement may change what an ad audience may hold (cdp.activation.audiences.sync.may_send_ads).
AD_PURPOSES = frozenset({"ads", "advertising", "marketing"})


def consent_changed(events: list[dict[str, Any]], outcome: BatchOutcome) -> list[str]:
    """Profiles touched by an event (applied or a duplicate: a redelivery may follow a crash between
    the profile write and the signal) that states ``ads``/``marketing`` consent."""
    touched = set(outcome.applied) | set(outcome.duplicates)
    found: dict[str, None] = {}
    for event in events:
        mid = str(event.get("messageId"))
        if mid in touched and mid in outcome.profile_of and AD_PURPOSES.intersection(event_consent(event)):
            found[outcome.profile_of[mid]] = None
    return list(found)


@dataclass(frozen=True)
class CampaignTriggers:
    """The trigger feed: which events trigger a campaign, and where trigger messages go."""

    index: TriggerIndex
    publish: Callable[[list[tuple[TriggerMessage, int]]], None]


def unify_records(records: list[DeliveredRecord], store: IdentityStore, *, config: IdentityConfig, now: datetime,
                  realtime: RealtimeSegments | None = None, failures: FailureStore | None = None,
                  suppression: SuppressionList | None = None,
                  triggers: CampaignTriggers | None = None) -> UnifyResult:
    events: list[dict[str, Any]] = []
    suppressed = 0
    sequence_of: dict[str, str] = {}
    undecodable: list[str] = []
    for record in records:
        event = decode(record)
        if event is None:
            undecodable.append(record.sequence_number)
            continue
        if suppression is not None and suppression.any_suppressed(
                [*extract(event, config).identifiers, *event_identifiers(event)]):
            suppressed += 1
            continue
        events.append(event)
        sequence_of.setdefault(str(event.get("messageId")), record.sequence_number)
    outcome = resolve_isolating(events, store, config=config, now=now)
    retry = [sequence_of[mid] for mid in outcome.failed if mid in sequence_of]
    changes: list[MembershipChange] = []
    if realtime is not None and (outcome.applied or outcome.duplicates):
        try:
            changes = _evaluate_realtime(outcome, store, realtime, now)
            if realtime.consent_signal is not None and (people := consent_changed(events, outcome)):
                realtime.consent_signal(people)
        except CdpError:
            # The profile updates are done; a redelivery dedupes them and evaluates again.
            touched = (*outcome.applied, *outcome.duplicates)
            retry = [sequence_of[mid] for mid in touched if mid in sequence_of] + retry
    emitted = Emitted([])
    if triggers is not None and triggers.index and (outcome.applied or outcome.duplicates):
        # Duplicates too: the attempt that applied them may have stopped before publishing.
        emitted = emit_triggers(events, outcome.profile_of, triggers.index, now=now)
        try:
            if emitted.messages:
                triggers.publish(emitted.messages)
        except CdpError:
            sent = {m.message_id for m, _ in emitted.messages}
            retry = [sequence_of[mid] for mid in sent if mid in sequence_of] + retry
            emitted = Emitted([], emitted.stale)
    unprocessable = {sequence_of[mid]: reason for mid, reason in outcome.isolated.items() if mid in sequence_of}
    unprocessable.update(dict.fromkeys(undecodable, "undecodable"))
    reasons = {sequence_of[mid]: code for mid, code in outcome.failed.items() if mid in sequence_of}
    kept = _keep_failures(records, unprocessable, {seq: reasons.get(seq, "realtime_segments") for seq in retry},
                          failures, now)
    if kept is None:
        # Not kept (no failure store, or it failed): only the mapping's retries and its on-failure
        # destination can still save these records, so they are reported, never dropped.
        retry = [*retry, *unprocessable]
    return UnifyResult(outcome=outcome, changes=changes, retry=sorted(set(retry), key=int),
                       undecodable=undecodable, kept=kept or [], suppressed=suppressed,
                       triggers=len(emitted.messages), triggers_stale=emitted.stale)


def _keep_failures(records: list[DeliveredRecord], unprocessable: dict[str, str], retry: dict[str, str],
                   failures: FailureStore | None, now: datetime) -> list[FailedRecord] | None:
    """Write every record isolated or sent back for retry to the failure store, before it is reported.

    Keys depend only on the record, so a redelivery rewrites the same failure record. Returns what
    was written, or None when there is no store or it failed.
    """
    if not (unprocessable or retry):
        return []
    if failures is None:
        return None
    by_sequence = {r.sequence_number: r for r in records}
    kept = [_failed_record(by_sequence[seq], reason, False, 1, now) for seq, reason in unprocessable.items()]
    try:
        retried = [_failed_record(by_sequence[seq], reason, True, 1, now) for seq, reason in sorted(retry.items())]
        seen = failures.attempts([r.key for r in retried])
        kept += [_failed_record(by_sequence[r.sequence_number], r.reason, True, seen.get(r.key, 0) + 1, now)
                 for r in retried]
        failures.put(kept)
    except StoreError:
        return None
    return kept


def _failed_record(record: DeliveredRecord, reason: str, retryable: bool, attempt: int, now: datetime) -> FailedRecord:
    event = decode(record)
    message_id = event.get("messageId") if event is not None else None
    arrived = datetime.fromtimestamp(record.arrived_at, UTC) if record.arrived_at is not None else now
    return FailedRecord(FUNCTION, record.shard_id, record.sequence_number, record.partition_key, record.data,
                        format_time(arrived), reason, retryable, attempt, format_time(now),
                        message_id if isinstance(message_id, str) else None)


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
