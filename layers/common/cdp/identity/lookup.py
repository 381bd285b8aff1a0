"""Reading profiles: by any identifier, and full scans for lake snapshots."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any, Protocol

from cdp.identity.config import IdentityConfig
from cdp.identity.identifiers import parse_identifier
from cdp.identity.profile import Profile, ProfileView
from cdp.identity.store import IdentityStore

_DEFAULT = IdentityConfig()
MAX_HOPS = 16


class ProfileReader(Protocol):
    def get_profiles(self, profile_ids: Collection[str]) -> Mapping[str, Any]: ...


def find_profile(
    identifier: str, store: IdentityStore, *, config: IdentityConfig = _DEFAULT
) -> Profile | None:
    """The live profile holding ``identifier`` (normalised first), following tombstones."""
    identifier = parse_identifier(identifier, config)
    profile_id = store.get_pointers([identifier]).get(identifier)
    return live_profile(profile_id, store) if profile_id else None


def follow_tombstones(profile_id: str, read: Callable[[str], Profile | None]) -> tuple[str, Profile | None]:
    """Where ``merged_into`` leads from ``profile_id``: the last id reached and its profile.

    The profile is None when the chain ends at a missing profile. A chain longer than
    ``MAX_HOPS`` (a cycle, or damage) stops there, on a tombstone.
    """
    profile = read(profile_id)
    for _ in range(MAX_HOPS):
        if profile is None or profile.merged_into is None:
            break
        profile_id = profile.merged_into
        profile = read(profile_id)
    return profile_id, profile


def live_profile(profile_id: str, store: ProfileReader) -> Profile | None:
    """The live profile ``profile_id`` was merged into (itself if live), or None."""
    _, profile = follow_tombstones(profile_id, lambda p: store.get_profiles([p]).get(p))
    return profile if profile is not None and profile.merged_into is None else None


def lookup_profile(
    identifier: str, store: IdentityStore, *, config: IdentityConfig = _DEFAULT
) -> dict[str, Any] | None:
    """JSON-ready profile for ``type:value`` (e.g. ``email:Alice@Example.com``), or None if unknown.

    The profile's view plus, per purpose, when the standing consent statement was received
    (``consent_statements``) and what each activation channel would decide (``activation``).
    Raises :class:`cdp.errors.InvalidIdentifier` for a malformed identifier.
    """
    from cdp.privacy.consent import decisions  # cdp.privacy reads cdp.identity's consent state

    profile = find_profile(identifier, store, config=config)
    if profile is None:
        return None
    view: dict[str, Any] = dict(profile.view())
    view["consent_statements"] = {
        purpose: {"granted": held.granted, "received_at": held.stamp.partition("|")[0] or None,
                  "message_id": held.stamp.partition("|")[2] or None}
        for purpose, held in sorted(profile.consent.purposes.items())}
    view["activation"] = decisions(view)
    return view


def iter_profiles(store: IdentityStore) -> Iterator[ProfileView]:
    """Every live profile as its JSON-ready view (tombstones skipped)."""
    for profile in store.scan_profiles():
        if profile.merged_into is None:
            yield profile.view()


def iter_identity_map(store: IdentityStore) -> Iterator[tuple[str, str]]:
    """``(identifier, profile_id)`` for every identifier of every live profile."""
    for profile in store.scan_profiles():
        if profile.merged_into is None:
            for identifier in profile.identifiers:
                yield identifier, profile.profile_id
