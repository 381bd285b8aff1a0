"""Why do these identifiers belong together? The merge log of a profile and of everything it absorbed."""

from __future__ import annotations

from typing import Any, TypedDict

from cdp.errors import NotFound
from cdp.identity.config import IdentityConfig
from cdp.identity.identifiers import by_type
from cdp.identity.lookup import find_profile
from cdp.identity.store import IdentityStore, MergeLogEntry

_DEFAULT = IdentityConfig()
_MAX_PROFILES = 200


class Explanation(TypedDict):
    """The ``/explain`` response: a profile's identifiers and the evidence that joined them."""

    identifier: str
    profile_id: str
    identifiers: dict[str, list[str]]
    why: dict[str, list[dict[str, Any]]]  # identifier -> evidence entries
    merges: list[dict[str, Any]]  # MergeLogEntry.view()
    refusals: list[dict[str, Any]]
    unmerges: list[dict[str, Any]]
    absorbed_profiles: list[str]
    log: list[dict[str, Any]]


def profile_history(profile_id: str, store: IdentityStore) -> list[MergeLogEntry]:
    """Log entries of ``profile_id`` and of every profile merged into it, oldest first."""
    entries: dict[tuple[str, str], MergeLogEntry] = {}
    queue: list[str] = [profile_id]
    seen: set[str] = set()
    while queue and len(seen) < _MAX_PROFILES:
        current = queue.pop()
        if current in seen:
            continue
        seen.add(current)
        for entry in store.read_merge_log(current):
            entries[(entry.profile_id, entry.entry_id)] = entry
            if entry.kind == "merge":
                queue.extend(p for p in entry.other_profile_ids if p not in seen)
    return sorted(entries.values(), key=lambda e: (e.at, e.entry_id))


def explain(identifier: str, store: IdentityStore, *, config: IdentityConfig = _DEFAULT) -> Explanation:
    """JSON-ready account of the profile holding ``identifier``: for each of its identifiers, the
    evidence that linked it (event messageId, rule, time), the merges, refusals and unmerges.

    Raises :class:`NotFound` when no profile holds the identifier, ``InvalidIdentifier`` when it is
    malformed.
    """
    profile = find_profile(identifier, store, config=config)
    if profile is None:
        raise NotFound("no profile holds this identifier", identifier=identifier)
    history = profile_history(profile.profile_id, store)
    current = set(profile.identifiers)
    absorbed: dict[str, str] = {}  # profile id -> survivor id, for the merge entries
    for entry in history:
        if entry.kind == "merge":
            for other in entry.other_profile_ids:
                absorbed[other] = entry.profile_id
    why: dict[str, list[dict[str, Any]]] = {i: [] for i in sorted(current)}
    for entry in history:
        if entry.kind == "link":
            for linked in entry.identifiers:
                if linked in why:
                    why[linked].append(_evidence(entry))
        elif entry.kind == "merge":
            for bridge in entry.identifiers:
                if bridge in why:
                    why[bridge].append(_evidence(entry))
    return {
        "identifier": identifier,
        "profile_id": profile.profile_id,
        "identifiers": by_type(profile.identifiers),
        "why": why,
        "merges": [e.view() for e in history if e.kind == "merge"],
        "refusals": [e.view() for e in history if e.kind == "refused"],
        "unmerges": [e.view() for e in history if e.kind in ("detach", "unmerge")],
        "absorbed_profiles": sorted(absorbed),
        "log": [e.view() for e in history],
    }


def _evidence(entry: MergeLogEntry) -> dict[str, Any]:
    return {
        "kind": entry.kind,
        "profile_id": entry.profile_id,
        "message_id": entry.message_id,
        "rule": entry.rule,
        "at": entry.at,
        "with": [i for i in entry.identifiers] + list(entry.other_profile_ids),
    }
