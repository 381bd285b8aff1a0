"""Computed traits, consent and the customer lifecycle: typed sub-states of a profile, and the pure
functions over them.

Each piece has an ``apply`` (one event) and a ``merge`` (two profiles) that return a new state, so
that a merged profile equals the profile built from both event histories, with no double counting.
The states are stored as JSON (``to_dict``/``from_dict``); the stored shape is the one these
sub-states have always had, so older items read back unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from cdp.identity.config import IdentityConfig, LifecycleConfig
from cdp.identity.identifiers import dotted_value
from cdp.times import parse_timestamp


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


# ------------------------------------------------------------------------------ typed sub-states
@dataclass(frozen=True, slots=True)
class ComputedTraits:
    """Computed trait values by name; ``stamps`` keeps the event stamp of each ``last_value``."""

    values: Mapping[str, Any] = field(default_factory=dict)
    stamps: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        if not self.values and not self.stamps:
            return {}
        return {"values": dict(self.values), "stamps": dict(self.stamps)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ComputedTraits:
        data = _mapping(data)
        return cls(dict(_mapping(data.get("values"))), {str(k): str(v) for k, v in _mapping(data.get("stamps")).items()})


@dataclass(frozen=True, slots=True)
class ConsentStatement:
    """One purpose granted or denied, by the event stamped ``stamp``."""

    granted: bool
    stamp: str

    def to_dict(self) -> dict[str, Any]:
        return {"granted": self.granted, "stamp": self.stamp}


@dataclass(frozen=True, slots=True)
class Consent:
    """The standing consent statement per purpose."""

    purposes: Mapping[str, ConsentStatement] = field(default_factory=dict)

    def granted(self, purpose: str) -> bool | None:
        """True or False if the person said so for ``purpose``; None if they never did."""
        held = self.purposes.get(purpose)
        return None if held is None else held.granted

    def view(self) -> dict[str, bool]:
        return {purpose: held.granted for purpose, held in sorted(self.purposes.items())}

    def to_dict(self) -> dict[str, Any]:
        return {purpose: held.to_dict() for purpose, held in self.purposes.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Consent:
        purposes = {
            str(purpose): ConsentStatement(bool(held.get("granted")), str(held.get("stamp", "")))
            for purpose, held in _mapping(data).items()
            if isinstance(held, Mapping)
        }
        return cls(purposes)


@dataclass(frozen=True, slots=True)
class StageChange:
    stage: str
    at: str

    def to_dict(self) -> dict[str, str]:
        return {"stage": self.stage, "at": self.at}


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """Lifecycle stage and the counters it is decided from; ``history`` holds the latest changes."""

    stage: str | None = None
    orders: int = 0
    intent: int = 0
    last_order_at: str | None = None
    history: tuple[StageChange, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        # Only what is set, as the stored items have always had it.
        data: dict[str, Any] = {}
        if self.orders:
            data["orders"] = self.orders
        if self.intent:
            data["intent"] = self.intent
        if self.last_order_at:
            data["last_order_at"] = self.last_order_at
        if self.stage is not None:
            data["stage"] = self.stage
        if self.history:
            data["history"] = [h.to_dict() for h in self.history]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Lifecycle:
        data = _mapping(data)
        stage = data.get("stage")
        last = data.get("last_order_at")
        history = tuple(
            StageChange(str(h["stage"]), str(h["at"]))
            for h in data.get("history") or ()
            if isinstance(h, Mapping) and "stage" in h and "at" in h
        )
        return cls(
            stage=str(stage) if stage is not None else None,
            orders=int(data.get("orders") or 0),
            intent=int(data.get("intent") or 0),
            last_order_at=str(last) if last else None,
            history=history,
        )


# ------------------------------------------------------------------------------ computed traits
def apply_computed(
    state: ComputedTraits, event: Mapping[str, Any], event_stamp: str, config: IdentityConfig
) -> ComputedTraits:
    """``state`` with one event counted in every computed trait it matches."""
    if not config.computed_traits:
        return state
    values = dict(state.values)
    stamps = dict(state.stamps)
    when = event_stamp.split("|", 1)[0]
    properties = event.get("properties") if isinstance(event.get("properties"), Mapping) else {}
    for trait in config.computed_traits:
        if not trait.matches(event):
            continue
        name = trait.name
        if trait.kind == "count":
            values[name] = values.get(name, 0) + 1
        elif trait.kind == "sum":
            amount = _number(dotted_value(properties, trait.property or ""))
            if amount is not None:
                values[name] = _number(values.get(name, 0) + amount)
        elif trait.kind == "first_time":
            if name not in values or when < values[name]:
                values[name] = when
        elif trait.kind == "last_time":
            if name not in values or when > values[name]:
                values[name] = when
        elif trait.kind == "last_value":
            value = dotted_value(properties, trait.property or "")
            if value is not None and event_stamp > stamps.get(name, ""):
                values[name] = value
                stamps[name] = event_stamp
    return ComputedTraits(values, stamps)


def merge_computed(into: ComputedTraits, other: ComputedTraits, config: IdentityConfig) -> ComputedTraits:
    kinds = {t.name: t.kind for t in config.computed_traits}
    values = dict(into.values)
    stamps = dict(into.stamps)
    other_stamps = other.stamps
    for name, value in other.values.items():
        kind = kinds.get(name)
        if name not in values:
            values[name] = value
            if name in other_stamps:
                stamps[name] = other_stamps[name]
        elif kind in ("count", "sum"):
            values[name] = _number(values[name] + value)
        elif kind == "first_time":
            values[name] = min(values[name], value)
        elif kind == "last_time":
            values[name] = max(values[name], value)
        elif kind == "last_value" and other_stamps.get(name, "") > stamps.get(name, ""):
            values[name] = value
            stamps[name] = other_stamps[name]
    return ComputedTraits(values, stamps)


# ------------------------------------------------------------------------------ consent
#: Track events that state consent in their ``properties`` (Segment's Unify event and a plain name),
#: in the same shapes as ``context``: ``categoryPreferences`` or RudderStack's consent id lists.
CONSENT_EVENTS = frozenset({"Consent Updated", "Segment Consent Preference Updated"})


def event_consent(event: Mapping[str, Any]) -> dict[str, bool]:
    """Purposes an event grants or denies: ``context.consent.categoryPreferences`` (Segment),
    ``context.consentManagement`` (RudderStack), and, on a :data:`CONSENT_EVENTS` track event, the
    same two shapes in ``properties`` (``properties.categoryPreferences`` or
    ``properties.allowedConsentIds``/``deniedConsentIds``), which win over its context."""
    context = event.get("context")
    found: dict[str, bool] = {}
    if isinstance(context, Mapping):
        _preferences(dotted_value(context, "consent.categoryPreferences"), found)
        _consent_ids(context.get("consentManagement"), found)
    if event.get("type") == "track" and event.get("event") in CONSENT_EVENTS:
        properties = event.get("properties")
        if isinstance(properties, Mapping):
            _preferences(properties.get("categoryPreferences"), found)
            _consent_ids(properties, found)
    return found


#: A purpose name as the profile keeps it (Segment category ids, OneTrust's ``C0001``...); any
#: other key is ignored, so a sender cannot fill the profile item with made-up purposes.
_PURPOSE = re.compile(r"[a-z0-9][a-z0-9_.:-]{0,63}")
#: Purposes one profile keeps at most; statements about further new purposes are ignored.
MAX_PURPOSES = 64


def _purpose(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    name = str(value).strip().lower()
    return name if _PURPOSE.fullmatch(name) else None


def _preferences(preferences: Any, found: dict[str, bool]) -> None:
    if isinstance(preferences, Mapping):
        for purpose, granted in preferences.items():
            name = _purpose(purpose)
            if name is not None and isinstance(granted, bool):
                found[name] = granted


def _consent_ids(management: Any, found: dict[str, bool]) -> None:
    if isinstance(management, Mapping):
        for key, granted in (("allowedConsentIds", True), ("deniedConsentIds", False)):
            ids = management.get(key)
            if isinstance(ids, list):
                for purpose in ids:
                    name = _purpose(purpose)
                    if name is not None:
                        found[name] = granted


def apply_consent(consent: Consent, event: Mapping[str, Any], event_stamp: str) -> Consent:
    """Within one person's history the latest statement per purpose wins."""
    stated = event_consent(event)
    if not stated:
        return consent
    purposes = dict(consent.purposes)
    for purpose, granted in stated.items():
        held = purposes.get(purpose)
        if held is None and len(purposes) >= MAX_PURPOSES:
            continue
        if held is None or event_stamp > held.stamp:
            purposes[purpose] = ConsentStatement(granted, event_stamp)
    return Consent(purposes)


def merge_consent(into: Consent, other: Consent) -> Consent:
    """Two people's profiles merged: the most restrictive statement per purpose wins."""
    purposes = dict(into.purposes)
    for purpose, theirs in other.purposes.items():
        ours = purposes.get(purpose)
        if ours is None:
            purposes[purpose] = theirs
        elif ours.granted != theirs.granted:
            purposes[purpose] = ours if not ours.granted else theirs
        elif theirs.stamp > ours.stamp:
            purposes[purpose] = theirs
    return Consent(purposes)


# ------------------------------------------------------------------------------ lifecycle
STAGES = (
    "new_visitor",
    "returning_visitor",
    "lead",
    "prospect",
    "new_customer",
    "engaged_customer",
    "churned",
)


def apply_lifecycle_event(
    state: Lifecycle, event: Mapping[str, Any], when: str, config: LifecycleConfig
) -> Lifecycle:
    if event.get("type") != "track":
        return state
    name = event.get("event")
    if name in config.purchase_events:
        last = when if when > (state.last_order_at or "") else state.last_order_at
        state = replace(state, orders=state.orders + 1, last_order_at=last)
    if name in config.intent_events:
        state = replace(state, intent=state.intent + 1)
    return state


def merge_lifecycle(into: Lifecycle, other: Lifecycle, config: LifecycleConfig) -> Lifecycle:
    last = max(into.last_order_at or "", other.last_order_at or "")
    history = sorted({(h.at, h.stage) for h in (*into.history, *other.history)})[-config.history_limit :]
    return replace(
        into,
        orders=into.orders + other.orders,
        intent=into.intent + other.intent,
        last_order_at=last or None,
        history=tuple(StageChange(stage, at) for at, stage in history),
    )


def stage_of(
    state: Lifecycle,
    identifier_types: Iterable[str],
    first_seen: str | None,
    last_seen: str | None,
    config: LifecycleConfig,
    now: datetime,
) -> str:
    if state.orders and state.last_order_at:
        last_order = parse_timestamp(state.last_order_at)
        if now - last_order > timedelta(days=config.churn_after_days):
            return "churned"
        return "engaged_customer" if state.orders >= config.engaged_min_orders else "new_customer"
    identified = any(t != "anonymous_id" for t in identifier_types)
    if identified:
        return "prospect" if state.intent else "lead"
    if first_seen and last_seen:
        first = parse_timestamp(first_seen)
        last = parse_timestamp(last_seen)
        if last - first >= timedelta(minutes=config.returning_after_minutes):
            return "returning_visitor"
    return "new_visitor"


def record_stage(state: Lifecycle, stage: str, at: str, config: LifecycleConfig) -> Lifecycle:
    """The state at ``stage``; a change is appended to the history with its time (same state if none)."""
    if state.stage == stage:
        return state
    history = (*state.history, StageChange(stage, at))
    return replace(state, stage=stage, history=history[max(0, len(history) - config.history_limit) :])
