"""Definitions evaluated in Python against one profile, with the same answers as the compiled SQL.

Only definitions whose condition reads the profile alone (traits, computed traits, lifecycle stage,
consent) can be evaluated this way (``SegmentDefinition.is_realtime``). The rules mirror the SQL:

* a trait is read as a JSON scalar as text (``true``/``false`` for booleans; objects, lists and null
  read as missing);
* a number in the definition compares the trait as a number (text that is not a number is missing);
* a comparison with a missing value is false, and so is its negation's operand: ``not`` of a
  comparison on a missing trait is true (the SQL makes every leaf two-valued).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from cdp.errors import InvalidSegment
from cdp.segments.definition import (
    AllOf,
    AnyOf,
    BehaviourCondition,
    Condition,
    ConsentCondition,
    FieldCondition,
    LifecycleCondition,
    Not,
    Predicate,
    SegmentDefinition,
    is_number,
)


def evaluate_profile(defn: SegmentDefinition, profile: Mapping[str, Any]) -> bool:
    """Whether ``profile`` is a member of ``defn``.

    ``profile`` is a profile as unify keeps it (``traits`` and ``computed_traits`` as dicts) or a row
    of the lake's profiles snapshot (``traits`` / ``computed`` / ``consent`` as JSON text).
    """
    if not defn.is_realtime:
        raise InvalidSegment(
            f"segment {defn.name!r} has event conditions: it can only be computed from the lake",
            segment=defn.name,
        )
    return _holds(defn.condition, _Profile(profile))


class _Profile:
    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.traits = _as_dict(raw.get("traits"))
        computed = raw.get("computed_traits", raw.get("computed"))
        self.computed = _as_dict(computed)
        self.consent = _as_dict(raw.get("consent"))
        stage = raw.get("lifecycle_stage")
        self.lifecycle_stage = stage if isinstance(stage, str) else None


def _holds(cond: Condition, profile: _Profile) -> bool:
    if isinstance(cond, AllOf):
        return all(_holds(c, profile) for c in cond.conditions)
    if isinstance(cond, AnyOf):
        return any(_holds(c, profile) for c in cond.conditions)
    if isinstance(cond, Not):
        return not _holds(cond.condition, profile)
    if isinstance(cond, FieldCondition):
        source = profile.traits if cond.source == "trait" else profile.computed
        text = _scalar_text(_get_path(source, cond.path))
        return all(_compare(text, p) for p in cond.predicates)
    if isinstance(cond, LifecycleCondition):
        return profile.lifecycle_stage in cond.stages
    if isinstance(cond, ConsentCondition):
        return _scalar_text(profile.consent.get(cond.purpose)) == "true"
    if isinstance(cond, BehaviourCondition):
        raise InvalidSegment("an event condition cannot be evaluated on a profile")
    raise InvalidSegment(f"unknown condition {cond!r}")


def _compare(text: str | None, p: Predicate) -> bool:
    if p.op == "exists":
        return (text is not None) == p.value
    if text is None:
        return False
    if p.op == "contains":
        return p.value in text
    if p.op in ("in", "not_in"):
        numeric = all(is_number(v) for v in p.value)
        if numeric:
            number = _to_number(text)
            if number is None:
                return False
            found = any(number == float(v) for v in p.value)
        else:
            found = text in (_literal_text(v) for v in p.value)
        return found if p.op == "in" else not found
    if is_number(p.value):
        number = _to_number(text)
        if number is None:
            return False
        return _ordered(number, float(p.value), p.op)
    return _ordered(text, _literal_text(p.value), p.op)


def _ordered(left: Any, right: Any, op: str) -> bool:
    if op == "eq":
        return bool(left == right)
    if op == "ne":
        return bool(left != right)
    if op == "gt":
        return bool(left > right)
    if op == "gte":
        return bool(left >= right)
    if op == "lt":
        return bool(left < right)
    return bool(left <= right)


def _get_path(data: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = data
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _scalar_text(value: Any) -> str | None:
    """The text SQL's JSON_EXTRACT_SCALAR gives for a value (None for null, objects and lists)."""
    if value is None or isinstance(value, Mapping | list | tuple):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return json.dumps(value) if math.isfinite(value) else None
    if isinstance(value, int | Decimal | str):
        return str(value)
    return str(value)


def _to_number(text: str) -> float | None:
    """TRY_CAST(text AS DOUBLE): ASCII decimal text (spaces, exponent, inf and nan allowed) or None."""
    if not text.isascii():
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _literal_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _as_dict(value: Any) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    if isinstance(value, str) and value:
        try:
            parsed = json.loads(value)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}
