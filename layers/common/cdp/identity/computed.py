"""Computed traits, consent and the customer lifecycle: pure functions over a profile's state dicts.

Each piece has an ``apply`` (one event) and a ``merge`` (two profiles) so that a merged profile
equals the profile built from both event histories, with no double counting.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from cdp.identity.config import IdentityConfig, LifecycleConfig


def _path(node: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


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


# ------------------------------------------------------------------------------ computed traits
def apply_computed(
    state: dict[str, Any], event: Mapping[str, Any], event_stamp: str, config: IdentityConfig
) -> None:
    """``state`` is ``{"values": {name: value}, "stamps": {name: stamp}}``."""
    if not config.computed_traits:
        return
    values: dict[str, Any] = state.setdefault("values", {})
    stamps: dict[str, str] = state.setdefault("stamps", {})
    when = event_stamp.split("|", 1)[0]
    properties = event.get("properties") if isinstance(event.get("properties"), Mapping) else {}
    for trait in config.computed_traits:
        if not trait.matches(event):
            continue
        name = trait.name
        if trait.kind == "count":
            values[name] = values.get(name, 0) + 1
        elif trait.kind == "sum":
            amount = _number(_path(properties, trait.property or ""))
            if amount is not None:
                values[name] = _number(values.get(name, 0) + amount)
        elif trait.kind == "first_time":
            if name not in values or when < values[name]:
                values[name] = when
        elif trait.kind == "last_time":
            if name not in values or when > values[name]:
                values[name] = when
        elif trait.kind == "last_value":
            value = _path(properties, trait.property or "")
            if value is not None and event_stamp > stamps.get(name, ""):
                values[name] = value
                stamps[name] = event_stamp


def merge_computed(into: dict[str, Any], other: Mapping[str, Any], config: IdentityConfig) -> None:
    kinds = {t.name: t.kind for t in config.computed_traits}
    values: dict[str, Any] = into.setdefault("values", {})
    stamps: dict[str, str] = into.setdefault("stamps", {})
    other_stamps = other.get("stamps", {})
    for name, value in other.get("values", {}).items():
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


# ------------------------------------------------------------------------------ consent
def event_consent(event: Mapping[str, Any]) -> dict[str, bool]:
    """Purposes an event grants or denies (Segment categoryPreferences, RudderStack consent ids)."""
    context = event.get("context")
    if not isinstance(context, Mapping):
        return {}
    found: dict[str, bool] = {}
    preferences = _path(context, "consent.categoryPreferences")
    if isinstance(preferences, Mapping):
        for purpose, granted in preferences.items():
            if isinstance(granted, bool):
                found[str(purpose).strip().lower()] = granted
    management = context.get("consentManagement")
    if isinstance(management, Mapping):
        for key, granted in (("allowedConsentIds", True), ("deniedConsentIds", False)):
            ids = management.get(key)
            if isinstance(ids, list):
                for purpose in ids:
                    found[str(purpose).strip().lower()] = granted
    return found


def apply_consent(consent: dict[str, Any], event: Mapping[str, Any], event_stamp: str) -> None:
    """Within one person's history the latest statement per purpose wins."""
    for purpose, granted in event_consent(event).items():
        held = consent.get(purpose)
        if held is None or event_stamp > held["stamp"]:
            consent[purpose] = {"granted": granted, "stamp": event_stamp}


def merge_consent(into: dict[str, Any], other: Mapping[str, Any]) -> None:
    """Two people's profiles merged: the most restrictive statement per purpose wins."""
    for purpose, theirs in other.items():
        ours = into.get(purpose)
        if ours is None:
            into[purpose] = dict(theirs)
        elif ours["granted"] != theirs["granted"]:
            into[purpose] = dict(ours if not ours["granted"] else theirs)
        elif theirs["stamp"] > ours["stamp"]:
            into[purpose] = dict(theirs)


def consent_view(consent: Mapping[str, Any]) -> dict[str, bool]:
    return {purpose: bool(held["granted"]) for purpose, held in sorted(consent.items())}


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
    state: dict[str, Any], event: Mapping[str, Any], when: str, config: LifecycleConfig
) -> None:
    if event.get("type") != "track":
        return
    name = event.get("event")
    if name in config.purchase_events:
        state["orders"] = state.get("orders", 0) + 1
        if when > (state.get("last_order_at") or ""):
            state["last_order_at"] = when
    if name in config.intent_events:
        state["intent"] = state.get("intent", 0) + 1


def merge_lifecycle(into: dict[str, Any], other: Mapping[str, Any], config: LifecycleConfig) -> None:
    into["orders"] = into.get("orders", 0) + other.get("orders", 0)
    into["intent"] = into.get("intent", 0) + other.get("intent", 0)
    last = max(into.get("last_order_at") or "", other.get("last_order_at") or "")
    if last:
        into["last_order_at"] = last
    history = sorted({(h["at"], h["stage"]) for h in [*into.get("history", []), *other.get("history", [])]})[
        -config.history_limit :
    ]
    into["history"] = [{"stage": stage, "at": at} for at, stage in history]


def stage_of(
    state: Mapping[str, Any],
    identifier_types: Iterable[str],
    first_seen: str | None,
    last_seen: str | None,
    config: LifecycleConfig,
    now: datetime,
) -> str:
    orders = state.get("orders", 0)
    if orders:
        last_order = datetime.fromisoformat(state["last_order_at"].replace("Z", "+00:00"))
        if now - last_order > timedelta(days=config.churn_after_days):
            return "churned"
        return "engaged_customer" if orders >= config.engaged_min_orders else "new_customer"
    identified = any(t != "anonymous_id" for t in identifier_types)
    if identified:
        return "prospect" if state.get("intent", 0) else "lead"
    if first_seen and last_seen:
        first = datetime.fromisoformat(first_seen.replace("Z", "+00:00"))
        last = datetime.fromisoformat(last_seen.replace("Z", "+00:00"))
        if last - first >= timedelta(minutes=config.returning_after_minutes):
            return "returning_visitor"
    return "new_visitor"


def record_stage(state: dict[str, Any], stage: str, at: str, config: LifecycleConfig) -> bool:
    """Set the stage; a change is appended to the history with its time. True if it changed."""
    if state.get("stage") == stage:
        return False
    state["stage"] = stage
    history = state.setdefault("history", [])
    history.append({"stage": stage, "at": at})
    del history[: max(0, len(history) - config.history_limit)]
    return True
