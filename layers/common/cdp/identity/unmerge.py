"""Unmerge: detach an identifier from its profile, or undo a merge, and rebuild from archived events.

Both operations split one live profile's identifiers into groups, rebuild each group's profile
(traits, counters, computed traits, consent, lifecycle, window of applied messageIds) by replaying
the archived events that belong to it, write the profiles in one transaction at their expected
versions, repoint the index and log the operation. The groups are kept apart from then on: each
profile records the others' identifiers in ``do_not_link``, and resolution refuses (and logs)
any later link between them.

An event belongs to the group of its highest-priority identifier found in any group.
Events not yet archived when the unmerge runs are not replayed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cdp.errors import InvalidUnmerge, NotFound
from cdp.identity.config import IdentityConfig
from cdp.identity.identifiers import alias_candidates, by_type, extract, parse_identifier
from cdp.identity.lookup import find_profile, live_profile
from cdp.identity.profile import (
    Profile,
    apply_event,
    new_profile_id,
    refresh_stage,
    remember,
    stamp,
)
from cdp.identity.store import IdentityStore, MergeLogEntry
from cdp.lake import row_to_event
from cdp.times import format_time

_DEFAULT = IdentityConfig()


@dataclass
class UnmergeResult:
    # profile id -> its identifiers by type, after the operation
    profiles: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    replayed: int = 0
    log: list[MergeLogEntry] = field(default_factory=list)


def detach(
    identifier: str,
    store: IdentityStore,
    *,
    events: Iterable[Mapping[str, Any]],
    config: IdentityConfig = _DEFAULT,
    now: datetime,
    reason: str = "manual",
) -> UnmergeResult:
    """Move ``identifier`` to a profile of its own, rebuilt from ``events`` (the archive)."""
    identifier = parse_identifier(identifier, config)
    profile = find_profile(identifier, store, config=config)
    if profile is None:
        raise NotFound("no profile holds this identifier", identifier=identifier)
    if identifier not in profile.identifiers:
        raise InvalidUnmerge("the profile does not list this identifier", identifier=identifier)
    if len(profile.identifiers) == 1:
        raise InvalidUnmerge("the identifier is the profile's only one", identifier=identifier)
    seed = f"{identifier}#detached-from#{profile.profile_id}#{profile.version}"
    detached = Profile(new_profile_id(seed), created_at=format_time(now))
    groups = [
        (profile, [i for i in profile.identifiers if i != identifier]),
        (detached, [identifier]),
    ]
    return _split(groups, store, events=events, config=config, now=now, kind="detach", reason=reason)


def undo_merge(
    absorbed_profile_id: str,
    store: IdentityStore,
    *,
    events: Iterable[Mapping[str, Any]],
    config: IdentityConfig = _DEFAULT,
    now: datetime,
    reason: str = "manual",
) -> UnmergeResult:
    """Bring back a profile a merge turned into a tombstone, with the identifiers it brought."""
    absorbed = store.get_profiles([absorbed_profile_id]).get(absorbed_profile_id)
    if absorbed is None:
        raise NotFound("no such profile", profile_id=absorbed_profile_id)
    if absorbed.merged_into is None:
        raise InvalidUnmerge("the profile was not merged", profile_id=absorbed_profile_id)
    survivor = live_profile(absorbed.merged_into, store)
    if survivor is None:
        raise NotFound("the profile it was merged into is gone", profile_id=absorbed.merged_into)
    brought = [i for i in absorbed.identifiers if i in set(survivor.identifiers)]
    kept = [i for i in survivor.identifiers if i not in set(brought)]
    if not brought or not kept:
        raise InvalidUnmerge("nothing to separate", profile_id=absorbed_profile_id)
    absorbed.merged_into = None
    groups = [(survivor, kept), (absorbed, brought)]
    return _split(groups, store, events=events, config=config, now=now, kind="unmerge", reason=reason)


@dataclass(frozen=True, slots=True)
class _Group:
    """One side of a split: its profile as stored, the identifiers it keeps, the others' identifiers."""

    original: Profile
    identifiers: list[str]
    others: frozenset[str]


def _split(
    groups: list[tuple[Profile, list[str]]],
    store: IdentityStore,
    *,
    events: Iterable[Mapping[str, Any]],
    config: IdentityConfig,
    now: datetime,
    kind: str,
    reason: str,
) -> UnmergeResult:
    """Assign the archived events to groups → rebuild each group's profile → write → log."""
    now_text = format_time(now)
    sides = [
        _Group(profile, identifiers, frozenset(i for other, (_, ids) in enumerate(groups) if other != index for i in ids))
        for index, (profile, identifiers) in enumerate(groups)
    ]
    owner = {identifier: index for index, side in enumerate(sides) for identifier in side.identifiers}
    assigned = _assign(events, owner, len(sides), config)
    rebuilt = [_rebuild(side, events_of, config, now, now_text) for side, events_of in zip(sides, assigned, strict=True)]

    store.put_merge(rebuilt[0], rebuilt[1:])
    store.set_pointers({i: rebuilt[owner[i]].profile_id for i in owner})
    log = [
        MergeLogEntry(
            profile.profile_id,
            kind,
            now_text,
            None,
            reason,
            tuple(sorted(side.others)),
            tuple(p.profile_id for p in rebuilt if p is not profile),
            {"replayed": len(events_of)},
        )
        for side, profile, events_of in zip(sides, rebuilt, assigned, strict=True)
    ]
    store.append_merge_log(log)
    return UnmergeResult(
        profiles={p.profile_id: by_type(p.identifiers) for p in rebuilt},
        replayed=sum(len(a) for a in assigned),
        log=log,
    )


def _assign(
    events: Iterable[Mapping[str, Any]], owner: Mapping[str, int], groups: int, config: IdentityConfig
) -> list[list[Mapping[str, Any]]]:
    """Each distinct event goes to the group of its highest-priority identifier found in any group."""
    assigned: list[list[Mapping[str, Any]]] = [[] for _ in range(groups)]
    seen: set[str] = set()
    for raw in events:
        event = normalise_archived(raw)
        message_id = event.get("messageId")
        if not message_id or message_id in seen:
            continue
        extracted = extract(event, config)
        candidates = list(extracted.identifiers)
        if extracted.alias_of is not None:
            candidates += list(alias_candidates(extracted.alias_of))
        group = next((owner[i] for i in candidates if i in owner), None)
        if group is not None:
            seen.add(message_id)
            assigned[group].append(event)
    return assigned


def _rebuild(
    side: _Group, events: list[Mapping[str, Any]], config: IdentityConfig, now: datetime, now_text: str
) -> Profile:
    """The group's profile replayed from its events, at the stored version, kept apart from the others."""
    original = side.original
    profile = Profile(
        original.profile_id,
        identifiers=sorted(side.identifiers),
        created_at=original.created_at or now_text,
        updated_at=now_text,
        version=original.version,
        do_not_link=sorted((set(original.do_not_link) - set(side.identifiers)) | side.others),
    )
    for replayed in sorted(events, key=lambda e: stamp(e, now)):
        apply_event(profile, replayed, config, now)
        refresh_stage(profile, config, now, stamp(replayed, now).split("|", 1)[0])
    remember(profile, [], config)
    refresh_stage(profile, config, now, now_text)
    return profile


def normalise_archived(row: Mapping[str, Any]) -> dict[str, Any]:
    """A Segment-spec event from an archived one: a lake row (snake_case, JSON strings) or an event."""
    return dict(row) if "messageId" in row else row_to_event(row)
