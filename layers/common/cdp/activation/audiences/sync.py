"""Membership changes applied to an ad audience once each; a full rebuild; removal on erasure.

Exactly once, as the email channel does it: each change is claimed in the effect ledger under
``aud#<destination>#<segment>#<profile>#<run>#<add|remove>`` before the platform call and marked
``sent`` after it. Unlike email, an add or a remove is idempotent at the platform (an audience is a
set of hashed keys), so every failure RELEASES the claim, whether or not the platform may have
applied the request: sending it again changes nothing. That is why a crash after the platform call
(before ``mark_sent``) still gives one audience change: the redelivery takes the expired claim over
and repeats a no-op. Order is protected by reading membership first: an add is sent only if the
person is still a member from that entry run, a remove only if they are no longer a member, so a
late redelivery of an old entry cannot re-add someone who has left since (``stale``).

Only people with ``ads`` consent are added (:func:`may_send_ads`, the one place that decides it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cdp.activation import EffectLedger
from cdp.activation.audiences import AudiencePlatform, Upload
from cdp.activation.audiences.normalise import PersonKeys, person_keys
from cdp.errors import DestinationRefused
from cdp.identity.store import IdentityStore
from cdp.privacy.consent import may_contact
from cdp.segments.membership import Change, MembershipChange, MembershipStore

ADS_PURPOSE = "ads"


def may_send_ads(profile: Mapping[str, Any]) -> bool:
    """Whether this person's keys may be sent to an ad platform: the consent check every channel
    makes (:func:`cdp.privacy.consent.may_contact`) for the ``ads`` purpose, which needs a grant."""
    return bool(may_contact(profile, ADS_PURPOSE))


def ads_consent_known(profile: Mapping[str, Any]) -> bool:
    """A remove is sent for anyone who ever answered for ``ads`` (granted, or withdrawn since)."""
    return may_contact(profile, ADS_PURPOSE).reason in ("granted", "denied")


class ProfileViews(Protocol):
    def views(self, profile_ids: list[str]) -> dict[str, Mapping[str, Any]]: ...


@dataclass
class SyncReport:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # key -> reason
    failed: dict[str, str] = field(default_factory=dict)  # key -> platform's code (aborted)
    # To try again later (released claims, or claims another attempt holds): the changes, with why.
    retry: list[MembershipChange] = field(default_factory=list)
    retry_action: str = ""
    retry_after: float | None = None
    unrecorded: list[str] = field(default_factory=list)

    def merge_retry(self, changes: Iterable[MembershipChange], action: str, retry_after: float | None) -> None:
        self.retry.extend(changes)
        if action == "slow_down" or not self.retry_action:
            self.retry_action = action
        if retry_after is not None:
            self.retry_after = max(retry_after, self.retry_after or 0.0)


def audience_key(destination: str, change: MembershipChange) -> str:
    op = "add" if change.change is Change.ENTERED else "remove"
    return f"aud#{destination}#{change.segment}#{change.profile_id}#{change.run_id}#{op}"


def sync_changes(destination: str, changes: Sequence[MembershipChange], *, platform: AudiencePlatform,
                 profiles: ProfileViews, membership: MembershipStore, ledger: EffectLedger,
                 report: SyncReport | None = None) -> SyncReport:
    """Apply ``changes`` to one audience; never raises for a platform refusal (see the report)."""
    report = report if report is not None else SyncReport()
    current = membership.members_of({(c.segment, c.profile_id) for c in changes})
    views = profiles.views(sorted({c.profile_id for c in changes}))
    todo: dict[str, list[tuple[str, MembershipChange, PersonKeys]]] = {"add": [], "remove": []}
    for change in changes:
        key = audience_key(destination, change)
        member = current.get((change.segment, change.profile_id))
        entered = change.change is Change.ENTERED
        if (entered and (member is None or member.entered_run != change.run_id)) or (not entered and member):
            report.skipped[key] = "stale"
            continue
        view = views.get(change.profile_id)
        if view is None:
            report.skipped[key] = "no_profile"
            continue
        if not (may_send_ads(view) if entered else ads_consent_known(view)):
            report.skipped[key] = "no_ads_consent"
            continue
        keys = person_keys(view)
        if not keys.matchable:
            report.skipped[key] = "no_keys"
            continue
        claim = ledger.claim(key)
        if claim == "pending":
            report.merge_retry([change], "retry", None)
            continue
        if claim == "exhausted":
            report.skipped[key] = "outcome_unknown"
            continue
        if claim != "acquired":
            report.duplicates.append(key)
            continue
        todo["add" if entered else "remove"].append((key, change, keys))
    for op, items in todo.items():
        for start in range(0, len(items), platform.max_batch):
            _send(op, items[start:start + platform.max_batch], platform, ledger, report)
    return report


def _send(op: str, items: list[tuple[str, MembershipChange, PersonKeys]], platform: AudiencePlatform,
          ledger: EffectLedger, report: SyncReport) -> None:
    people = [keys for _, _, keys in items]
    # One single-batch session per request (Meta's session fields; Google ignores them). Derived from
    # the claims, so a retried batch reuses its session id.
    session = int(hashlib.sha256("|".join(k for k, _, _ in items).encode()).hexdigest()[:15], 16)
    try:
        send = platform.add if op == "add" else platform.remove
        upload: Upload = send(people, session=session, batch_seq=1, last=True, estimated_total=len(people))
    except DestinationRefused as exc:
        if exc.action == "abort":
            reason = str(exc.details.get("code") or exc.details.get("status") or exc.reason)
            for key, _, _ in items:
                ledger.mark_failed(key, reason)
                report.failed[key] = reason
            return
        for key, _, _ in items:
            ledger.release(key)  # idempotent at the platform: sending again is harmless
        report.merge_retry([c for _, c, _ in items], exc.action, exc.retry_after)
        return
    except Exception:
        for key, _, _ in items:
            ledger.release(key)
        raise
    done = report.added if op == "add" else report.removed
    for key, _, _ in items:
        try:
            ledger.mark_sent(key, upload.request_id or "ok")
        except Exception:  # applied all the same; a redelivery repeats a no-op
            report.unrecorded.append(key)
        done.append(key)


@dataclass
class ResyncReport:
    members: int = 0
    sent: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    batches: int = 0


def resync(segments: Sequence[str], *, platform: AudiencePlatform, profiles: ProfileViews,
           membership: MembershipStore, session_id: int, page: int = 1000) -> ResyncReport:
    """Send every current member of ``segments`` with ``ads`` consent as one multi-batch session.

    Adds are idempotent, so a resync that dies half-way is simply run again. People who left while
    the sync was broken are not removed by this (the platforms' audiences cannot be listed); their
    exits are redelivered from the dead-letter store or age out with the platform's membership life.
    """
    report = ResyncReport()
    ids = sorted({pid for segment in segments for pid in membership.members(segment)})
    report.members = len(ids)
    people: list[PersonKeys] = []
    for start in range(0, len(ids), page):
        chunk = ids[start:start + page]
        views = profiles.views(chunk)
        missing = len(set(chunk) - set(views))
        if missing:
            report.skipped["no_profile"] = report.skipped.get("no_profile", 0) + missing
        for view in views.values():
            if not may_send_ads(view):
                report.skipped["no_ads_consent"] = report.skipped.get("no_ads_consent", 0) + 1
                continue
            keys = person_keys(view)
            if not keys.matchable:
                report.skipped["no_keys"] = report.skipped.get("no_keys", 0) + 1
                continue
            people.append(keys)
    total = len(people)
    batches = [people[i:i + platform.max_batch] for i in range(0, total, platform.max_batch)] or []
    for seq, batch in enumerate(batches, start=1):
        platform.add(batch, session=session_id, batch_seq=seq, last=seq == len(batches), estimated_total=total)
        report.sent += len(batch)
        report.batches += 1
    return report


def remove_person(profile: Mapping[str, Any], platforms: Iterable[AudiencePlatform]) -> int:
    """Take one person out of every audience (for erasure, before the profile is deleted).

    Sent whatever the consent: a removal only takes data away. Returns how many audiences were asked.
    """
    keys = person_keys(profile)
    if not keys.matchable:
        return 0
    count = 0
    for platform in platforms:
        platform.remove([keys])
        count += 1
    return count


class StoreProfileViews:
    """Profile views from the unified profiles (erased profiles, tombstones, are absent)."""

    def __init__(self, store: IdentityStore) -> None:
        self.store = store

    def views(self, profile_ids: list[str]) -> dict[str, Mapping[str, Any]]:
        profiles = self.store.get_profiles(profile_ids)
        return {pid: p.view() for pid, p in profiles.items() if not p.is_tombstone}
