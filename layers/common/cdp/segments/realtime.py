"""Real-time segments: when unify changes a profile, re-evaluate the profile-only definitions.

The stored membership is the one the scheduled runs use, so a profile that enters in real time is
already a member when the next scheduled run diffs, and is not announced twice.

Entries go through an outbox: a new member is stored ``announced=False`` BEFORE its change is
published, and marked announced after. Whoever next finds it unannounced (a redelivered record, the
next real-time evaluation, the scheduled run) publishes the entry again with the STORED run id, which
activation dedupes; so an entry is announced under one id whatever fails in between. ``run_id``
should be deterministic for the triggering change (``"rt:" + messageId``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from cdp import concurrently
from cdp.segments.definition import SegmentDefinition
from cdp.segments.membership import Change, Member, MembershipChange, MembershipStore, store_announced
from cdp.segments.predicate import evaluate_profile
from cdp.times import format_time


def realtime_segments(defns: Iterable[SegmentDefinition]) -> list[SegmentDefinition]:
    """The definitions that read the profile alone (no event conditions)."""
    return [d for d in defns if d.is_realtime]


def evaluate_changes(
    defns: Iterable[SegmentDefinition],
    profile: Mapping[str, Any],
    *,
    membership: MembershipStore,
    publish: Callable[[list[MembershipChange]], None],
    run_id: str,
    now: datetime,
) -> list[MembershipChange]:
    """Entered/exited changes of ``profile`` for every real-time definition; published, then stored."""
    return evaluate_batch(defns, [profile], membership=membership, publish=publish,
                          run_ids={str(profile["profile_id"]): run_id}, now=now)


def evaluate_batch(
    defns: Iterable[SegmentDefinition],
    profiles: Iterable[Mapping[str, Any]],
    *,
    membership: MembershipStore,
    publish: Callable[[list[MembershipChange]], None],
    run_ids: Mapping[str, str],
    now: datetime,
) -> list[MembershipChange]:
    """The same for many profiles at once: one batched membership read, one publish, batched writes."""
    realtime = realtime_segments(defns)
    profiles = list(profiles)
    if not realtime or not profiles:
        return []
    at = format_time(now)
    keys = [(d.name, str(p["profile_id"])) for d in realtime for p in profiles]
    stored: dict[tuple[str, str], Member] = membership.members_of(keys)
    changes: list[MembershipChange] = []
    pending: dict[str, list[Member]] = {}
    for profile in profiles:
        profile_id = str(profile["profile_id"])
        for defn in realtime:
            is_member = evaluate_profile(defn, profile)
            member = stored.get((defn.name, profile_id))
            if is_member and member is None:
                entry = Member(profile_id, run_ids[profile_id], at, announced=False)
                pending.setdefault(defn.name, []).append(entry)
                changes.append(MembershipChange(defn.name, profile_id, Change.ENTERED, entry.entered_run, at))
            elif is_member and member is not None and not member.announced:
                changes.append(MembershipChange(defn.name, profile_id, Change.ENTERED, member.entered_run,
                                                member.entered_at))
            elif member is not None and not is_member:
                changes.append(MembershipChange(defn.name, profile_id, Change.EXITED, run_ids[profile_id], at))
    if not changes:
        return []
    concurrently.all_of(lambda segment: membership.apply(segment, pending[segment], []), list(pending))
    publish(changes)
    store_announced(membership, changes)
    return changes
