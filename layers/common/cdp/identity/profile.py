"""The unified profile and the pure operations on it: apply an event, absorb a merged profile."""

from __future__ import annotations

import base64
import copy
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypedDict

from cdp.identity.computed import (
    ComputedTraits,
    Consent,
    Lifecycle,
    apply_computed,
    apply_consent,
    apply_lifecycle_event,
    merge_computed,
    merge_consent,
    merge_lifecycle,
    record_stage,
    stage_of,
)
from cdp.identity.config import IdentityConfig
from cdp.identity.identifiers import by_type, split_identifier
from cdp.times import format_time, parse_time

_EPOCH_STAMP = "0000-00-00T00:00:00.000Z"


def event_time(event: Mapping[str, Any], now: datetime) -> str:
    """When the event happened: its timestamp, else when it was received, else now."""
    for key in ("timestamp", "originalTimestamp", "receivedAt"):
        moment = parse_time(event.get(key))
        if moment is not None:
            return format_time(moment)
    return format_time(now)


def stamp(event: Mapping[str, Any], now: datetime) -> str:
    """Total order of events: time, then messageId to break ties the same way everywhere."""
    return f"{event_time(event, now)}|{event.get('messageId', '')}"


def received_stamp(event: Mapping[str, Any], now: datetime) -> str:
    """Order of consent statements: when we received them, which no sender can forge."""
    moment = parse_time(event.get("receivedAt"))
    return f"{format_time(moment or now)}|{event.get('messageId', '')}"


def message_key(message_id: str) -> str:
    """72-bit digest of a messageId: 12 characters whatever the id's length, so the window stays
    small in the item (write units), and a collision within one profile's window is negligible."""
    return base64.urlsafe_b64encode(hashlib.blake2b(message_id.encode(), digest_size=9).digest()).decode()


def new_profile_id(seed: str) -> str:
    """Deterministic id, so a batch retried after a crash finds the profile it already created."""
    return "p-" + hashlib.sha256(seed.encode()).hexdigest()[:26]


class ProfileView(TypedDict):
    """A profile as the profile API returns it, the lake snapshots it and segments read it."""

    profile_id: str
    identifiers: dict[str, list[str]]  # by type, values sorted
    traits: dict[str, Any]
    computed_traits: dict[str, Any]
    lifecycle_stage: str | None
    lifecycle_history: list[dict[str, str]]  # {"stage", "at"}, oldest first
    consent: dict[str, bool]  # purpose -> granted
    first_seen: str | None
    last_seen: str | None
    event_count: int


@dataclass
class Profile:
    profile_id: str
    identifiers: list[str] = field(default_factory=list)
    traits: dict[str, Any] = field(default_factory=dict)
    # Per trait: the stamp ("time|messageId") of the event that set its current value.
    trait_stamps: dict[str, str] = field(default_factory=dict)
    first_seen: str | None = None
    last_seen: str | None = None
    event_count: int = 0
    # Keys (message_key) of recently applied messageIds, oldest first; bounded by config.dedup_window.
    recent: list[str] = field(default_factory=list)
    merged_into: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    computed: ComputedTraits = field(default_factory=ComputedTraits)
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    consent: Consent = field(default_factory=Consent)
    # Identifiers that must never join this profile again (set by an unmerge).
    do_not_link: list[str] = field(default_factory=list)
    # Optimistic lock: None until stored; the store checks and bumps it on every write.
    version: int | None = None

    @property
    def is_tombstone(self) -> bool:
        return self.merged_into is not None

    def clone(self) -> Profile:
        return copy.deepcopy(self)

    def view(self) -> ProfileView:
        """JSON-ready view for the profile API and lake snapshots."""
        return {
            "profile_id": self.profile_id,
            "identifiers": by_type(self.identifiers),
            "traits": dict(self.traits),
            "computed_traits": dict(self.computed.values),
            "lifecycle_stage": self.lifecycle.stage,
            "lifecycle_history": [change.to_dict() for change in self.lifecycle.history],
            "consent": self.consent.view(),
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "event_count": self.event_count,
        }


def add_identifiers(profile: Profile, identifiers: list[str] | tuple[str, ...] | set[str]) -> bool:
    """Add identifiers; True if any was new."""
    known = set(profile.identifiers)
    fresh = [i for i in identifiers if i not in known]
    if fresh:
        profile.identifiers = sorted(known.union(fresh))
    return bool(fresh)


def _wins(policy: str, challenger: str, holder: str | None) -> bool:
    if holder is None:
        return True
    return challenger > holder if policy == "latest" else challenger < holder


def _set_traits(
    profile: Profile, traits: Mapping[str, Any], event_stamp: str, config: IdentityConfig
) -> None:
    for name, value in traits.items():
        policy = config.trait_policies.get(name, "latest")
        if _wins(policy, event_stamp, profile.trait_stamps.get(name)):
            profile.traits[name] = copy.deepcopy(value)
            profile.trait_stamps[name] = event_stamp


def event_traits(event: Mapping[str, Any]) -> dict[str, Any]:
    """Traits an event sets on the person: context.traits, then the identify's own traits."""
    merged: dict[str, Any] = {}
    context = event.get("context")
    if isinstance(context, Mapping) and isinstance(context.get("traits"), Mapping):
        merged.update(context["traits"])
    if event.get("type") == "identify" and isinstance(event.get("traits"), Mapping):
        merged.update(event["traits"])
    return merged


def apply_event(profile: Profile, event: Mapping[str, Any], config: IdentityConfig, now: datetime) -> None:
    """Fold one event into the profile (the caller has checked it was not applied before)."""
    event_stamp = stamp(event, now)
    when = event_stamp.split("|", 1)[0]
    _set_traits(profile, event_traits(event), event_stamp, config)
    profile.event_count += 1
    if profile.first_seen is None or when < profile.first_seen:
        profile.first_seen = when
    if profile.last_seen is None or when > profile.last_seen:
        profile.last_seen = when
    profile.computed = apply_computed(profile.computed, event, event_stamp, config)
    profile.consent = apply_consent(profile.consent, event, received_stamp(event, now))
    profile.lifecycle = apply_lifecycle_event(profile.lifecycle, event, when, config.lifecycle)
    remember(profile, [message_key(str(event["messageId"]))], config)


def refresh_stage(profile: Profile, config: IdentityConfig, now: datetime, at: str) -> bool:
    """Recompute the lifecycle stage; a change is kept in the history at ``at``. True if changed."""
    types = {split_identifier(i)[0] for i in profile.identifiers}
    stage = stage_of(profile.lifecycle, types, profile.first_seen, profile.last_seen, config.lifecycle, now)
    before = profile.lifecycle
    profile.lifecycle = record_stage(before, stage, at, config.lifecycle)
    return profile.lifecycle is not before


def remember(profile: Profile, keys: list[str], config: IdentityConfig) -> None:
    """Add message keys to the window of applied events, dropping the oldest beyond its bound."""
    seen = set(profile.recent)
    for key in keys:
        if key not in seen:
            profile.recent.append(key)
            seen.add(key)
    if len(profile.recent) > config.dedup_window:
        del profile.recent[: len(profile.recent) - config.dedup_window]


def absorb(survivor: Profile, other: Profile, config: IdentityConfig) -> None:
    """Merge ``other`` into ``survivor``: traits per trait by event time, counters add, windows union."""
    add_identifiers(survivor, other.identifiers)
    for name, value in other.traits.items():
        other_stamp = other.trait_stamps.get(name, _EPOCH_STAMP)
        policy = config.trait_policies.get(name, "latest")
        if _wins(policy, other_stamp, survivor.trait_stamps.get(name)):
            survivor.traits[name] = copy.deepcopy(value)
            survivor.trait_stamps[name] = other_stamp
    survivor.event_count += other.event_count
    for attr, pick in (("first_seen", min), ("last_seen", max)):
        values = [v for v in (getattr(survivor, attr), getattr(other, attr)) if v is not None]
        setattr(survivor, attr, pick(values) if values else None)
    survivor.computed = merge_computed(survivor.computed, other.computed, config)
    survivor.consent = merge_consent(survivor.consent, other.consent)
    survivor.lifecycle = merge_lifecycle(survivor.lifecycle, other.lifecycle, config.lifecycle)
    survivor.do_not_link = sorted(set(survivor.do_not_link) | set(other.do_not_link))
    theirs = set(other.recent)
    merged_recent = other.recent + [m for m in survivor.recent if m not in theirs]
    survivor.recent = []
    remember(survivor, merged_recent, config)


def seniority(profile: Profile) -> tuple[str, str]:
    """Sort key: the oldest first_seen survives a merge; ids break ties."""
    return (profile.first_seen or "9999", profile.profile_id)
