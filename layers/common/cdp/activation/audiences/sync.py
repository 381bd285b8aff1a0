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

import contextlib
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cdp.activation import EffectLedger
from cdp.activation.audiences import AudiencePlatform, Hashed, Upload
from cdp.activation.audiences.holdings import Holding, Holdings, grow, shrink
from cdp.activation.audiences.normalise import person_keys
from cdp.errors import CdpError, DestinationRefused
from cdp.identity.store import IdentityStore
from cdp.privacy.consent import UMBRELLA_PURPOSE, may_contact
from cdp.segments.membership import Change, MembershipChange, MembershipStore

ADS_PURPOSE = "ads"


def may_send_ads(profile: Mapping[str, Any]) -> bool:
    """Whether this person's keys may be sent to an ad platform: the consent check every channel
    makes (:func:`cdp.privacy.consent.may_contact`) for the ``ads`` purpose, which needs a grant,
    and no denial of ``marketing`` (the umbrella: withdrawing it takes a person out of ad audiences too)."""
    return bool(may_contact(profile, ADS_PURPOSE)) and may_contact(profile, UMBRELLA_PURPOSE).reason != "denied"


def ads_consent_known(profile: Mapping[str, Any]) -> bool:
    """A remove is sent for anyone who ever answered for ``ads`` (granted, or withdrawn since)."""
    return may_contact(profile, ADS_PURPOSE).reason in ("granted", "denied")


class ProfileViews(Protocol):
    def views(self, profile_ids: list[str]) -> dict[str, Mapping[str, Any]]: ...

    def merged_into(self, profile_ids: list[str]) -> dict[str, str]:
        """The profile each of these was merged into (merged-away ids only)."""
        ...


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
    # Held records another writer changed meanwhile, left holding what was removed (a superset).
    kept: list[str] = field(default_factory=list)

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
                 report: SyncReport | None = None, holdings: Holdings | None = None) -> SyncReport:
    """Apply ``changes`` to one audience; never raises for a platform refusal (see the report).

    With ``holdings``, an add is recorded before it is sent and a remove sends the keys that were
    sent (all of them, if the person's keys changed in between), then drops them from the record. The
    exit of a profile merged away since sends its held keys' removal, then its survivor's held keys
    again (docs/architecture.md, "Merges").
    """
    report = report if report is not None else SyncReport()
    current = membership.members_of({(c.segment, c.profile_id) for c in changes})
    pids = sorted({c.profile_id for c in changes})
    views = profiles.views(pids)
    known = holdings.read(destination, pids) if holdings is not None else {}
    held = {pid: h.rows for pid, h in known.items()}
    gone = [pid for pid in pids if pid not in views and held.get(pid)]  # merged away or erased, still held
    survivor_of = profiles.merged_into(gone) if gone and holdings is not None else {}
    todo: dict[str, list[tuple[str, MembershipChange, list[Hashed]]]] = {"add": [], "remove": []}
    for change in changes:
        key = audience_key(destination, change)
        member = current.get((change.segment, change.profile_id))
        entered = change.change is Change.ENTERED
        if (entered and (member is None or member.entered_run != change.run_id)) or (not entered and member):
            report.skipped[key] = "stale"
            continue
        view = views.get(change.profile_id)
        if view is None and not entered and held.get(change.profile_id):
            # Merged away (or erased): its profile is gone but what it was sent is held. A removal
            # only takes data away, so no consent or keys of today are needed: the held rows go.
            keys = None
        elif view is None:
            report.skipped[key] = "no_profile"
            continue
        elif not (may_send_ads(view) if entered else ads_consent_known(view)):
            report.skipped[key] = "no_ads_consent"
            continue
        elif not (keys := person_keys(view)).matchable:
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
        hashed = platform.hashed(keys) if keys is not None else None
        if entered:
            todo["add"].append((key, change, [hashed] if hashed is not None else []))
        else:
            sent = held.get(change.profile_id) or ([hashed] if hashed is not None else [])
            todo["remove"].append((key, change, sent))
    # The survivors of merged-away people being removed: their rows are sent again after the removes,
    # since the removed rows may share a key (the email that merged them) with the survivor's.
    survivors = sorted({survivor_of[c.profile_id] for _, c, _ in todo["remove"] if c.profile_id in survivor_of})
    restore: list[Hashed] = []
    if holdings is not None:
        adds: dict[str, list[Hashed]] = {}
        for _, change, members in todo["add"]:
            mine = adds.setdefault(change.profile_id, [])
            mine.extend(m for m in members if m not in mine)
        if survivors:
            theirs = holdings.read(destination, survivors)
            known = {**known, **theirs}
            for pid, holding in theirs.items():
                adds.setdefault(pid, []).extend(r for r in holding.rows if r not in adds.get(pid, []))
                restore.extend(holding.rows)
        try:
            # Write-ahead, a new version even for rows already held (a fence for concurrent shrinks).
            known = {**known, **grow(holdings, destination, adds, known)}
        except Exception:
            for key, _, _ in (*todo["add"], *todo["remove"]):
                ledger.release(key)
            raise
    for op, items in todo.items():
        for start in range(0, len(items), platform.max_batch):
            _send(op, items[start:start + platform.max_batch], platform, ledger, report, destination, holdings,
                  known, restore if op == "remove" else [])
    return report


def _send(op: str, items: list[tuple[str, MembershipChange, list[Hashed]]], platform: AudiencePlatform,
          ledger: EffectLedger, report: SyncReport, destination: str, holdings: Holdings | None,
          known: Mapping[str, Holding], restore: list[Hashed]) -> None:
    people = [m for _, _, members in items for m in members]
    # One single-batch session per request (Meta's session fields; Google ignores them). Derived from
    # the claims, so a retried batch reuses its session id.
    session = int(hashlib.sha256("|".join(k for k, _, _ in items).encode()).hexdigest()[:15], 16)
    try:
        # More than one request only when removing people whose keys changed (several members each).
        upload: Upload = platform.send(op, people[:platform.max_batch], session=session, batch_seq=1, last=True,
                                       estimated_total=len(people))
        for n, start in enumerate(range(platform.max_batch, len(people), platform.max_batch), start=1):
            platform.send(op, people[start:start + platform.max_batch], session=session + n)
        # Before the claims are marked: a crash here repeats the remove (a no-op) and this add.
        for n, start in enumerate(range(0, len(restore), platform.max_batch), start=1):
            platform.send("add", restore[start:start + platform.max_batch], session=session - n)
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
    if op == "remove" and holdings is not None:
        # Removed from the platform: a crash before this only leaves keys to remove again (a no-op).
        with contextlib.suppress(CdpError):
            report.kept += shrink(holdings, destination, {c.profile_id: sent for _, c, sent in items}, known)
    done = report.added if op == "add" else report.removed
    for key, _, _ in items:
        try:
            ledger.mark_sent(key, upload.request_id or "ok")
        except Exception:  # applied all the same; a redelivery repeats a no-op
            report.unrecorded.append(key)
        done.append(key)


@dataclass
class ResyncReport:
    members: int = 0  # current members of the followed segments
    sent: int = 0  # people added (again)
    removed: int = 0  # people taken out (left, withdrew consent, or lost their keys)
    replaced: int = 0  # people whose old keys were taken out as well (their keys changed)
    unchanged: int = 0  # a targeted reconcile: already held with the same keys
    kept: int = 0  # records another writer changed meanwhile: their stale rows stay held (a superset)
    skipped: dict[str, int] = field(default_factory=dict)
    batches: int = 0

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def reconcile(destination: str, segments: Sequence[str], profile_ids: Sequence[str], *,
              platform: AudiencePlatform, profiles: ProfileViews, membership: MembershipStore,
              holdings: Holdings, session_id: int, resend: bool = False, page: int = 1000) -> ResyncReport:
    """Make the audience hold exactly the wanted ones among ``profile_ids``, from what it holds.

    Wanted: a member of one of ``segments`` whose profile grants ``ads`` (:func:`may_send_ads`) and
    has keys. Anyone held but not wanted is removed **with the keys that were sent**; anyone wanted is
    added (with ``resend``, even if already held: a resync repairs an audience the platform lost), and
    keys held from before a change of keys are removed. Order, for crashes: holdings grow first, then
    removes, adds, and only then holdings shrink; every request is idempotent, so running
    it again after a crash anywhere converges (docs/architecture.md, "Audience holdings").
    """
    report = ResyncReport()
    adds: list[tuple[str, Hashed]] = []
    removes: list[tuple[str, Hashed]] = []
    growing: dict[str, list[Hashed]] = {}
    stale_of: dict[str, list[Hashed]] = {}
    known: dict[str, Holding] = {}
    ids = list(dict.fromkeys(profile_ids))
    for start in range(0, len(ids), page):
        chunk = ids[start:start + page]
        current = membership.members_of({(s, pid) for s in segments for pid in chunk})
        views = profiles.views(chunk)
        read = holdings.read(destination, chunk)
        known.update(read)
        held = {pid: h.rows for pid, h in read.items()}
        for pid in chunk:
            member = any((s, pid) in current for s in segments)
            report.members += member
            old = held.get(pid, [])
            want = None
            view = views.get(pid)
            if not member:
                pass
            elif view is None:
                report.skip("no_profile")
            elif not may_send_ads(view):
                report.skip("no_ads_consent")
            elif (want := platform.hashed(person_keys(view))) is None:
                report.skip("no_keys")
            stale = [h for h in old if h != want]
            if want is not None:
                # Sent again when stale rows go first: they may share a key with it (see below).
                if resend or want not in old or stale:
                    adds.append((pid, want))
                    growing[pid] = [want]  # written even if held: the fence of concurrent shrinks
                else:
                    report.unchanged += 1
            if stale:
                removes.extend((pid, h) for h in stale)
                stale_of[pid] = stale
                if want is None:
                    report.removed += 1
                else:
                    report.replaced += 1
    known.update(grow(holdings, destination, growing, known))
    # Removes first: a platform removes whoever matches any key of a removed member, so an old row
    # that shares a key with a wanted one (the same email, a changed name) would take that one out.
    report.batches += _send_all(platform, "remove", [h for _, h in removes], session_id + 1)
    report.batches += _send_all(platform, "add", [h for _, h in adds], session_id)
    report.sent = len(adds)
    report.kept = len(shrink(holdings, destination, stale_of, known))
    return report


def _send_all(platform: AudiencePlatform, op: str, members: list[Hashed], session_id: int) -> int:
    """``members`` in batches of one session (Meta's session fields; Google ignores them)."""
    batches = [members[i:i + platform.max_batch] for i in range(0, len(members), platform.max_batch)]
    for seq, batch in enumerate(batches, start=1):
        platform.send(op, batch, session=session_id, batch_seq=seq, last=seq == len(batches),
                      estimated_total=len(members))
    return len(batches)


def resync(segments: Sequence[str], *, platform: AudiencePlatform, profiles: ProfileViews,
           membership: MembershipStore, session_id: int, holdings: Holdings, destination: str,
           page: int = 1000) -> ResyncReport:
    """Rebuild an audience from the current membership: every wanted member is sent again, and every
    person the audience holds who is no longer wanted (left, withdrew consent) is removed with the
    keys they were sent. Raises :class:`DestinationRefused` on a platform refusal; running it again
    (after a crash too) converges to the same audience."""
    ids = sorted({pid for segment in segments for pid in membership.members(segment)} | set(holdings.profiles(destination)))
    return reconcile(destination, segments, ids, platform=platform, profiles=profiles, membership=membership,
                     holdings=holdings, session_id=session_id, resend=True, page=page)


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

    def merged_into(self, profile_ids: list[str]) -> dict[str, str]:
        profiles = self.store.get_profiles(profile_ids)
        return {pid: p.merged_into for pid, p in profiles.items() if p.merged_into}
