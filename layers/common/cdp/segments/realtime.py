"""Real-time segments: when unify changes a profile, re-evaluate the profile-only definitions.

The stored membership is the one the scheduled runs use, so a profile that enters in real time is
already a member when the next scheduled run diffs, and is not announced twice. Changes are
published before the membership is written, as in a scheduled run; ``run_id`` should be
deterministic for the triggering change (e.g. ``"rt:" + messageId``) so a retried record re-sends
the same entry id, which activation dedupes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from cdp.segments.definition import SegmentDefinition
from cdp.segments.membership import Change, Member, MembershipChange, MembershipStore
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
    stored = membership.members_of(keys)
    changes: list[MembershipChange] = []
    for profile in profiles:
        profile_id = str(profile["profile_id"])
        for defn in realtime:
            is_member = evaluate_profile(defn, profile)
            was_member = (defn.name, profile_id) in stored
            if is_member and not was_member:
                changes.append(MembershipChange(defn.name, profile_id, Change.ENTERED, run_ids[profile_id], at))
            elif was_member and not is_member:
                changes.append(MembershipChange(defn.name, profile_id, Change.EXITED, run_ids[profile_id], at))
    if not changes:
        return []
    publish(changes)
    by_segment: dict[str, tuple[list[Member], list[str]]] = {}
    for change in changes:
        entered, exited = by_segment.setdefault(change.segment, ([], []))
        if change.change is Change.ENTERED:
            entered.append(Member(change.profile_id, change.run_id, at))
        else:
            exited.append(change.profile_id)
    for segment, (entered, exited) in by_segment.items():
        membership.apply(segment, entered, exited)
    return changes
