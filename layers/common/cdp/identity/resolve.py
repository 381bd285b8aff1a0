"""Identity resolution of a batch of events: link, merge, apply, exactly once.

One pass over a batch:

1. read the index entries of every identifier in the batch (batch read), then the profiles they
   point to, following tombstones (batch reads);
2. union-find over identifiers and existing profiles, event by event in event-time order, refusing
   any link that would break a per-type limit (merge protection);
3. per connected component: the oldest profile survives, the others are absorbed and become
   tombstones; the component's events not yet in the profile's window of applied messageIds are
   applied;
4. writes, in an order that keeps every crash point recoverable by a plain retry:
   claim new identifiers (conditional, pointing at the survivor, whose id is deterministic)
   -> write the profile at its expected version (the merge as one transaction; the batch's
   survivors at once, each independent of the others)
   -> repoint identifiers of absorbed profiles -> append the merge log.

A failed condition (another worker got there first) re-reads and retries only what is pending.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from cdp import concurrently
from cdp.errors import ConcurrentUpdate, StoreError
from cdp.identity.config import IdentityConfig
from cdp.identity.identifiers import Extracted, alias_candidates, extract, split_identifier
from cdp.identity.lookup import MAX_HOPS, follow_tombstones
from cdp.identity.profile import (
    Profile,
    absorb,
    add_identifiers,
    apply_event,
    message_key,
    new_profile_id,
    refresh_stage,
    seniority,
    stamp,
)
from cdp.identity.store import IdentityStore, MergeLogEntry
from cdp.times import format_time

# Merge-log partition for refusals on events that reached no profile at all.
UNRESOLVED = "unresolved"


@dataclass
class BatchOutcome:
    """What happened to each event of a batch, by messageId."""

    applied: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    # Transient failures: the event had no effect and should be redelivered.
    failed: dict[str, str] = field(default_factory=dict)
    # Permanent problems: redelivery cannot help (e.g. no usable identifier).
    rejected: dict[str, str] = field(default_factory=dict)
    # The store refused a write with a non-retryable error (validation ...): one of these events is
    # the cause; ``cdp.identity.isolate`` finds which and lets the others through.
    store_refused: dict[str, str] = field(default_factory=dict)
    # Events the store cannot hold (over a limit, or refused on their own): isolated from the batch.
    isolated: dict[str, str] = field(default_factory=dict)
    # messageId -> the profile the event now belongs to (applied and duplicates).
    profile_of: dict[str, str] = field(default_factory=dict)
    log: list[MergeLogEntry] = field(default_factory=list)
    attempts: int = 0
    # Profiles this batch created (written for the first time).
    created: list[str] = field(default_factory=list)

    @property
    def merges(self) -> list[MergeLogEntry]:
        return [e for e in self.log if e.kind == "merge"]

    @property
    def refusals(self) -> list[MergeLogEntry]:
        return [e for e in self.log if e.kind == "refused"]


@dataclass(eq=False)
class _Item:
    message_id: str
    event: Mapping[str, Any]
    extracted: Extracted
    stamp: str

    @property
    def time(self) -> str:
        return self.stamp.split("|", 1)[0]


# ------------------------------------------------------------------------------ union-find
class _Components:
    """Union-find whose components know their identifiers by type and their stored profiles."""

    def __init__(self, config: IdentityConfig) -> None:
        self.config = config
        self.parent: dict[str, str] = {}
        self.by_type: dict[str, dict[str, set[str]]] = {}
        self.profiles: dict[str, set[str]] = {}
        self.evidence: dict[str, list[tuple[_Item, tuple[str, ...]]]] = {}
        self.do_not_link: dict[str, set[str]] = {}

    def add(
        self,
        node: str,
        identifiers: Iterable[str] = (),
        profile_id: str | None = None,
        do_not_link: Iterable[str] = (),
    ) -> None:
        if node in self.parent:
            return
        self.parent[node] = node
        grouped: dict[str, set[str]] = defaultdict(set)
        for identifier in identifiers:
            identifier_type, _ = split_identifier(identifier)
            grouped[identifier_type].add(identifier)
        self.by_type[node] = grouped
        self.profiles[node] = {profile_id} if profile_id else set()
        self.evidence[node] = []
        self.do_not_link[node] = set(do_not_link)

    def find(self, node: str) -> str:
        root = node
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[node] != root:
            self.parent[node], node = root, self.parent[node]
        return root

    def breach(self, a: str, b: str) -> str | None:
        """The rule a union of a's and b's components would break (``limit_<type>``, ``unmerged``)."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return None
        ta, tb = self.by_type[ra], self.by_type[rb]
        for mine, forbidden in ((ta, self.do_not_link[rb]), (tb, self.do_not_link[ra])):
            if forbidden and any(forbidden.intersection(ids) for ids in mine.values()):
                return "unmerged"
        for identifier_type in set(ta) | set(tb):
            if len(ta.get(identifier_type, set()) | tb.get(identifier_type, set())) > self.config.limit(
                identifier_type
            ):
                return f"limit_{identifier_type}"
        return None

    def union(self, a: str, b: str, evidence: tuple[_Item, tuple[str, ...]] | None = None) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        bridging = bool(self.profiles[ra]) and bool(self.profiles[rb])
        self.parent[rb] = ra
        for identifier_type, identifiers in self.by_type.pop(rb).items():
            self.by_type[ra].setdefault(identifier_type, set()).update(identifiers)
        self.profiles[ra] |= self.profiles.pop(rb)
        self.evidence[ra] += self.evidence.pop(rb)
        self.do_not_link[ra] |= self.do_not_link.pop(rb)
        if bridging and evidence is not None:
            self.evidence[ra].append(evidence)


# ------------------------------------------------------------------------------ entry point
def resolve_batch(
    events: list[dict[str, Any]],
    store: IdentityStore,
    *,
    config: IdentityConfig,
    now: datetime,
) -> BatchOutcome:
    """Resolve identities and apply ``events`` to their unified profiles, each at most once.

    Never raises for one bad event or a store failure: every messageId ends in exactly one of
    ``applied``, ``duplicates``, ``failed`` (retry it) or ``rejected`` (retrying cannot help).
    """
    outcome = BatchOutcome()
    unresolved: list[MergeLogEntry] = []
    pending: list[_Item] = []
    seen: set[str] = set()
    copies: list[str] = []  # an event again in the same batch (a client's retry): it shares the first's fate
    for index, event in enumerate(events):
        message_id = event.get("messageId") if isinstance(event, Mapping) else None
        if not isinstance(message_id, str) or not message_id:
            outcome.rejected[f"#{index}"] = "missing_message_id"
            continue
        if message_id in seen:
            copies.append(message_id)
            continue
        seen.add(message_id)
        extracted = extract(event, config)
        item = _Item(message_id, event, extracted, stamp(event, now))
        if not extracted.identifiers and extracted.alias_of is None:
            outcome.rejected[message_id] = "no_usable_identifier"
            unresolved.extend(_blocked_entries(item, UNRESOLVED))
            continue
        pending.append(item)
    pending.sort(key=lambda it: it.stamp)

    while pending and outcome.attempts < config.max_attempts:
        outcome.attempts += 1
        try:
            pending = _attempt(pending, store, config, now, outcome)
        except StoreError as exc:
            _fail(outcome, [item.message_id for item in pending], exc)
            pending = []
    for item in pending:
        outcome.failed[item.message_id] = ConcurrentUpdate.code
    if unresolved:
        try:
            store.append_merge_log(unresolved)
            outcome.log.extend(unresolved)
        except StoreError as exc:
            for entry in unresolved:
                outcome.rejected.pop(entry.message_id or "", None)
            _fail(outcome, [entry.message_id or "" for entry in unresolved], exc)
    # A later attempt may have applied an event an earlier one reported as failed.
    for message_id in (*outcome.applied, *outcome.duplicates):
        outcome.failed.pop(message_id, None)
        outcome.store_refused.pop(message_id, None)
    # A copy is a duplicate only once its first is done: counted as one before, it took a failed
    # first out of ``failed`` above, and the event was reported done without being applied.
    done = {*outcome.applied, *outcome.duplicates}
    outcome.duplicates += [message_id for message_id in copies if message_id in done]
    return outcome


def _fail(outcome: BatchOutcome, message_ids: Iterable[str], exc: StoreError) -> None:
    """Retryable errors go back for redelivery; a refusal is kept apart, for isolation."""
    for message_id in message_ids:
        if exc.retryable:
            outcome.failed[message_id] = exc.code
        else:
            outcome.store_refused[message_id] = str(exc.details.get("code") or exc.code)


# ------------------------------------------------------------------------------ one attempt
@dataclass(frozen=True, slots=True)
class _Reads:
    """What the store holds for a batch: index entries, profiles (tombstones followed), links."""

    pointers: dict[str, str]
    profiles: dict[str, Profile]
    # item -> the identifiers it links: its own, then the alias's previous id
    links: dict[_Item, list[str]]

    def final(self, profile_id: str) -> str:
        return follow_tombstones(profile_id, self.profiles.get)[0]


@dataclass(frozen=True, slots=True)
class _Links:
    """The batch's identifiers joined into components, the refused links, the items per component."""

    comps: _Components
    refused: dict[_Item, list[tuple[str, str]]]
    by_root: dict[str, list[_Item]]


@dataclass(frozen=True, slots=True)
class _Merge:
    survivor: Profile
    tombstones: list[Profile]


@dataclass(frozen=True, slots=True)
class _Applied:
    applied: list[_Item]
    duplicates: list[_Item]
    log: list[MergeLogEntry]


@dataclass(frozen=True, slots=True)
class _Plan:
    survivor: Profile
    tombstones: list[Profile]
    items: list[_Item]
    applied: list[_Item]
    duplicates: list[_Item]
    claims: dict[str, str]
    repoints: dict[str, str]
    log: list[MergeLogEntry]
    changed: bool


def _attempt(
    pending: list[_Item],
    store: IdentityStore,
    config: IdentityConfig,
    now: datetime,
    outcome: BatchOutcome,
) -> list[_Item]:
    """One read → link → plan → write pass; returns the items to retry after a lost race."""
    reads = _read(pending, store)
    links = _link(pending, reads, config)
    plans = [_plan(root, items, links, reads, config, now) for root, items in sorted(links.by_root.items())]
    return _write(plans, pending, store, outcome)


def _read(pending: list[_Item], store: IdentityStore) -> _Reads:
    """Index entries and profiles (tombstones followed) of everything the batch mentions."""
    wanted: set[str] = set()
    for item in pending:
        wanted.update(item.extracted.identifiers)
        if item.extracted.alias_of is not None:
            wanted.update(alias_candidates(item.extracted.alias_of))
    pointers = store.get_pointers(wanted)

    links: dict[_Item, list[str]] = {}
    for item in pending:
        identifiers = list(item.extracted.identifiers)
        if item.extracted.alias_of is not None:
            as_user, as_anonymous = alias_candidates(item.extracted.alias_of)
            previous = as_user if as_user in pointers else as_anonymous
            if previous not in identifiers:
                identifiers.append(previous)
        links[item] = identifiers

    fresh = {i for ids in links.values() for i in ids if i not in pointers}
    to_fetch = set(pointers.values()) | {new_profile_id(i) for i in fresh}
    profiles: dict[str, Profile] = {}
    missing: set[str] = set()
    for _ in range(MAX_HOPS):
        if not to_fetch:
            break
        got = store.get_profiles(to_fetch)
        profiles.update(got)
        missing |= to_fetch - set(got)
        to_fetch = {
            p.merged_into for p in got.values() if p.merged_into and p.merged_into not in profiles
        } - missing
    return _Reads(pointers, profiles, links)


def _link(pending: list[_Item], reads: _Reads, config: IdentityConfig) -> _Links:
    """Union-find over identifiers and stored profiles, event by event, refusing breaching links."""
    comps = _Components(config)
    for identifier in {i for ids in reads.links.values() for i in ids}:
        comps.add(identifier, [identifier])
        if identifier in reads.pointers:
            profile_id = reads.final(reads.pointers[identifier])
            profile = reads.profiles.get(profile_id)
            comps.add(
                "§" + profile_id,
                profile.identifiers if profile else (),
                profile_id,
                profile.do_not_link if profile else (),
            )
            comps.union(identifier, "§" + profile_id)

    refused: dict[_Item, list[tuple[str, str]]] = defaultdict(list)
    for item in pending:
        identifiers = reads.links[item]
        if not identifiers:
            continue
        primary = identifiers[0]
        for other in identifiers[1:]:
            breached = comps.breach(primary, other)
            if breached is not None:
                refused[item].append((other, breached))
                continue
            comps.union(primary, other, (item, (primary, other)))

    by_root: dict[str, list[_Item]] = defaultdict(list)
    for item in pending:
        by_root[comps.find(reads.links[item][0])].append(item)
    return _Links(comps, refused, by_root)


def _plan(
    root: str,
    items: list[_Item],
    links: _Links,
    reads: _Reads,
    config: IdentityConfig,
    now: datetime,
) -> _Plan:
    """One component: its survivor and tombstones, its events applied, the index writes it needs."""
    now_text = format_time(now)
    identifiers = sorted({i for item in items for i in reads.links[item] if links.comps.find(i) == root})
    merge = _merge(root, identifiers, links.comps, reads.profiles, config, now_text)
    survivor, tombstones, sid = merge.survivor, merge.tombstones, merge.survivor.profile_id

    changed = survivor.version is None or bool(tombstones)
    if tombstones:
        refresh_stage(survivor, config, now, now_text)
    applied = _apply(root, items, survivor, links, reads, config, now)
    changed |= add_identifiers(survivor, identifiers)
    changed |= bool(applied.applied)
    if changed:
        survivor.updated_at = now_text

    log = list(applied.log)
    if tombstones:
        log.append(_merge_entry(sid, tombstones, links.comps.evidence[root], now_text))
    claims = {i: sid for i in identifiers if i not in reads.pointers}
    repoints = {i: sid for i in identifiers if i in reads.pointers and reads.pointers[i] != sid}
    for tomb in tombstones:
        for identifier in tomb.identifiers:
            repoints[identifier] = sid
    return _Plan(survivor, tombstones, items, applied.applied, applied.duplicates, claims, repoints, log, changed)


def _merge(
    root: str,
    identifiers: list[str],
    comps: _Components,
    profiles: Mapping[str, Profile],
    config: IdentityConfig,
    now_text: str,
) -> _Merge:
    """The oldest stored profile survives and absorbs the others; a component without one gets a new id."""
    stored = sorted(comps.profiles[root])
    live = sorted((profiles[p] for p in stored if p in profiles), key=seniority)
    absent = [p for p in stored if p not in profiles]
    if live:
        survivor = live[0]  # a private copy: every attempt reads afresh
    else:
        survivor = Profile(_new_survivor_id(absent, identifiers, profiles, config), created_at=now_text)
    sid = survivor.profile_id

    tombstones: list[Profile] = []
    for other in live[1:]:
        absorb(survivor, other, config)
        other.merged_into = sid
        other.updated_at = now_text
        tombstones.append(other)
    for profile_id in absent:
        if profile_id != sid:
            tombstones.append(Profile(profile_id, merged_into=sid, created_at=now_text, updated_at=now_text))
    return _Merge(survivor, tombstones)


def _new_survivor_id(
    absent: list[str], identifiers: list[str], profiles: Mapping[str, Profile], config: IdentityConfig
) -> str:
    if absent:
        return absent[0]
    anchor = min(identifiers, key=lambda i: (config.rank.get(split_identifier(i)[0], 99), i))
    profile_id = new_profile_id(anchor)
    if profile_id in profiles:  # the deterministic id is taken by an unrelated profile
        profile_id = new_profile_id(f"{anchor}#{profiles[profile_id].version}")
    return profile_id


def _apply(
    root: str,
    items: list[_Item],
    survivor: Profile,
    links: _Links,
    reads: _Reads,
    config: IdentityConfig,
    now: datetime,
) -> _Applied:
    """Apply the component's events not yet in the survivor's window; log links and refusals."""
    sid = survivor.profile_id
    known_before = set(survivor.identifiers)
    window = set(survivor.recent)
    applied: list[_Item] = []
    duplicates: list[_Item] = []
    log: list[MergeLogEntry] = []
    for item in items:
        key = message_key(item.message_id)
        if key in window:
            duplicates.append(item)
            continue
        apply_event(survivor, item.event, config, now)
        window.add(key)
        applied.append(item)
        linked = tuple(i for i in reads.links[item] if links.comps.find(i) == root and i not in known_before)
        if linked:
            add_identifiers(survivor, linked)
            known_before.update(linked)
            rule = "alias" if item.event.get("type") == "alias" else "same_event"
            log.append(MergeLogEntry(sid, "link", item.time, item.message_id, rule, linked))
        for identifier, rule in links.refused.get(item, ()):
            holder = {reads.final(reads.pointers[identifier])} if identifier in reads.pointers else set()
            log.append(
                MergeLogEntry(sid, "refused", item.time, item.message_id, rule, (identifier,), tuple(sorted(holder)))
            )
        log.extend(_blocked_entries(item, sid))
        # Identifiers count from the event that brought them, so the stage history reads true.
        refresh_stage(survivor, config, now, item.time)
    return _Applied(applied, duplicates, log)


def _merge_entry(
    sid: str, tombstones: list[Profile], evidence: list[tuple[_Item, tuple[str, ...]]], now_text: str
) -> MergeLogEntry:
    """The merge, dated by the earliest event that bridged two stored profiles."""
    first = min(evidence, key=lambda ev: ev[0].stamp) if evidence else None
    return MergeLogEntry(
        sid,
        "merge",
        first[0].time if first else now_text,
        first[0].message_id if first else None,
        "shared_identifier",
        first[1] if first else (),
        tuple(t.profile_id for t in tombstones),
        {"message_ids": sorted({ev[0].message_id for ev in evidence})},
    )


def _write(plans: list[_Plan], pending: list[_Item], store: IdentityStore, outcome: BatchOutcome) -> list[_Item]:
    """Claim → profiles → repoints and log, in the order that keeps every crash point retryable."""
    fresh = {plan.survivor.profile_id for plan in plans if plan.survivor.version is None}
    claims = {i: p for plan in plans for i, p in plan.claims.items()}
    try:
        store.claim_identifiers(claims)
    except ConcurrentUpdate:
        return pending

    done, retry = _write_profiles(plans, store, outcome)
    repoints = {i: p for plan in done for i, p in plan.repoints.items()}
    entries = [entry for plan in done for entry in plan.log]
    try:
        store.set_pointers(repoints)
        store.append_merge_log(entries)
    except StoreError as exc:
        # The profiles are written; redelivery finds the events applied and finishes these writes.
        _fail(outcome, [item.message_id for plan in done for item in plan.items], exc)
        return retry

    for plan in done:
        profile_id = plan.survivor.profile_id
        if profile_id in fresh:
            outcome.created.append(profile_id)
        for item in plan.applied:
            outcome.applied.append(item.message_id)
            outcome.profile_of[item.message_id] = profile_id
        for item in plan.duplicates:
            outcome.duplicates.append(item.message_id)
            outcome.profile_of[item.message_id] = profile_id
    outcome.log.extend(entries)
    return sorted(retry, key=lambda it: it.stamp)


def _write_survivor(plan: _Plan, store: IdentityStore) -> None:
    if plan.tombstones:
        store.put_merge(plan.survivor, plan.tombstones)
    elif plan.changed:
        store.put_profile(plan.survivor)


def _write_profiles(
    plans: list[_Plan], store: IdentityStore, outcome: BatchOutcome
) -> tuple[list[_Plan], list[_Item]]:
    """Each survivor at its expected version (a merge as one transaction): the plans done, the items to retry.

    A lost race (``ConcurrentUpdate``) retries the plan's items, a store error fails them; anything
    else (a bug, a crash) is raised once every write has ended, as the invocation's error.
    """
    writing = [plan for plan in plans if plan.tombstones or plan.changed]
    # At once: each is one profile's conditional put (or its merge's transaction), and a profile
    # belongs to one plan only; one after another, they were a third of unify's time per batch.
    raised = dict(zip(map(id, writing), concurrently.each(partial(_write_survivor, store=store), writing),
                      strict=True))
    retry: list[_Item] = []
    done: list[_Plan] = []
    for plan in plans:
        exc = raised.get(id(plan))
        if isinstance(exc, ConcurrentUpdate):
            retry.extend(plan.items)
        elif isinstance(exc, StoreError):
            _fail(outcome, [item.message_id for item in plan.items], exc)
        elif exc is not None:
            raise exc
        else:
            done.append(plan)
    return done, retry


def _blocked_entries(item: _Item, profile_id: str) -> list[MergeLogEntry]:
    return [
        MergeLogEntry(profile_id, "refused", item.time, item.message_id, rule, (identifier,))
        for identifier, rule in item.extracted.blocked
    ]
