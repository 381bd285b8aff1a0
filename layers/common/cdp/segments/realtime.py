"""Real-time segments: when unify changes a profile, re-evaluate the profile-only definitions.

The stored membership is the one the scheduled runs use, so a profile that enters in real time is
already a member when the next scheduled run diffs, and is not announced twice. Changes are
published before the membership is written, as in a scheduled run; ``run_id`` should be
deterministic for the triggering change (e.g. ``"rt:" + messageId``) so a retried record re-sends
the same entry id, which activation dedupes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from cdp.segments.definition import SegmentDefinition
from cdp.segments.membership import Member, MembershipChange, MembershipStore, iso
from cdp.segments.predicate import evaluate_profile


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
    profile_id = str(profile["profile_id"])
    at = iso(now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC))
    changes: list[MembershipChange] = []
    for defn in realtime_segments(defns):
        is_member = evaluate_profile(defn, profile)
        stored = membership.member(defn.name, profile_id)
        if is_member and stored is None:
            changes.append(MembershipChange(defn.name, profile_id, "entered", run_id, at))
        elif not is_member and stored is not None:
            changes.append(MembershipChange(defn.name, profile_id, "exited", run_id, at))
    if not changes:
        return []
    publish(changes)
    for change in changes:
        if change.change == "entered":
            membership.apply(change.segment, [Member(profile_id, run_id, at)], [])
        else:
            membership.apply(change.segment, [], [profile_id])
    return changes
