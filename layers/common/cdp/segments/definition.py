"""Segment definitions as code: the condition language, read from YAML with precise errors.

A definition file holds one segment::

    name: repeat-buyers
    description: People who completed two orders or more in the last 30 days.
    schedule: rate(1 hour)          # optional, EventBridge rate() or cron()
    condition:
      event: Order Completed
      within_days: 30
      min_count: 2

Conditions (a mapping with exactly one kind key):

* ``all: [..]`` / ``any: [..]`` / ``not: {..}`` combine conditions.
* ``trait: plan`` or ``computed: lifetime_value`` with operators
  ``eq ne gt gte lt lte in not_in contains exists`` (several operators are ANDed).
* ``lifecycle: new_customer`` or ``lifecycle: [lead, prospect]``.
* ``consent: email`` (the profile granted that purpose).
* ``event: Order Completed`` with ``within_days: N`` and optional ``where:`` property filters
  (``{property: currency, eq: EUR}``) and one measure: ``min_count`` / ``max_count``,
  ``count: {gte: 2}``, ``sum: {property: revenue, gte: 100}``, ``first: {within_days: 7}`` or
  ``last: {older_than_days: 14}``. Without a measure the condition means "at least once".

Every error raises :class:`cdp.errors.InvalidSegment` naming the file, the line and the field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cdp.errors import InvalidSegment
from cdp.identity.computed import STAGES
from cdp.marked_yaml import Ctx, load_marked
from cdp.segments.schedule import ScheduleError, validate_schedule

LIFECYCLE_STAGES: tuple[str, ...] = STAGES  # one list of stages: the identity package owns it

COMPARISON_OPS: tuple[str, ...] = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "contains", "exists")
NUMERIC_ONLY_OPS = frozenset({"gt", "gte", "lt", "lte"})
TIME_OPS: tuple[str, ...] = ("within_days", "older_than_days")
MAX_WINDOW_DAYS = 3660

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_PATH_SEGMENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RATE_RE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")

Scalar = str | int | float | bool


# ---------------------------------------------------------------- the model


@dataclass(frozen=True, slots=True)
class Predicate:
    """One comparison: ``op`` is one of COMPARISON_OPS (or TIME_OPS for first/last)."""

    op: str
    value: Any


@dataclass(frozen=True, slots=True)
class FieldCondition:
    """A condition on a profile trait or computed trait (a JSON path into the profile)."""

    source: Literal["trait", "computed"]
    path: tuple[str, ...]
    predicates: tuple[Predicate, ...]


@dataclass(frozen=True, slots=True)
class LifecycleCondition:
    stages: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ConsentCondition:
    purpose: str


@dataclass(frozen=True, slots=True)
class PropertyFilter:
    path: tuple[str, ...]
    predicates: tuple[Predicate, ...]


@dataclass(frozen=True, slots=True)
class BehaviourCondition:
    """A measure of one track event within the last ``within_days`` days, compared."""

    event: str
    within_days: int
    measure: Literal["count", "sum", "first", "last"] = "count"
    predicates: tuple[Predicate, ...] = (Predicate("gte", 1),)
    where: tuple[PropertyFilter, ...] = ()
    property: tuple[str, ...] | None = None  # the summed property, for measure "sum"


@dataclass(frozen=True, slots=True)
class AllOf:
    conditions: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    conditions: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Not:
    condition: Condition


Condition = FieldCondition | LifecycleCondition | ConsentCondition | BehaviourCondition | AllOf | AnyOf | Not


@dataclass(frozen=True, slots=True)
class SegmentDefinition:
    name: str
    condition: Condition
    description: str = ""
    schedule: str | None = None
    source: str = field(default="", compare=False)

    @property
    def behaviours(self) -> tuple[BehaviourCondition, ...]:
        return tuple(c for c in walk(self.condition) if isinstance(c, BehaviourCondition))

    @property
    def is_realtime(self) -> bool:
        """True when the condition reads only the profile, so it can be evaluated as events arrive."""
        return not self.behaviours


def walk(condition: Condition) -> Iterable[Condition]:
    """Every condition of the tree, depth first, parents before children."""
    yield condition
    if isinstance(condition, AllOf | AnyOf):
        for child in condition.conditions:
            yield from walk(child)
    elif isinstance(condition, Not):
        yield from walk(condition.condition)


# ---------------------------------------------------------------- parsing

_Ctx = Ctx

_TOP_KEYS = ("name", "description", "schedule", "condition")
_CONDITION_KINDS = ("all", "any", "not", "event", "trait", "computed", "lifecycle", "consent")
_BEHAVIOUR_KEYS = ("event", "within_days", "where", "min_count", "max_count", "count", "sum", "first", "last")
_MEASURES = ("min_count", "max_count", "count", "sum", "first", "last")


def parse_segment(text: str, source_name: str = "<segment>") -> SegmentDefinition:
    """Parse one definition; raise InvalidSegment naming file, line and field on any problem."""
    doc = load_marked(text, source_name, InvalidSegment)
    root = Ctx.root(source_name, doc, InvalidSegment)
    if not isinstance(doc, dict):
        raise root.fail("a segment definition must be a mapping with name and condition")
    _reject_unknown(doc, _TOP_KEYS, root)

    default_name = Path(source_name).stem if source_name and not source_name.startswith("<") else None
    name = doc.get("name", default_name)
    name_ctx = root.child(doc, "name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise name_ctx.fail(
            f"must be lower-case letters, digits, '-' or '_' (1-64 characters), got {name!r}"
            if name is not None
            else "is required"
        )
    description = doc.get("description", "")
    if not isinstance(description, str):
        raise root.child(doc, "description").fail("must be a string")
    schedule = doc.get("schedule")
    if schedule is not None:
        schedule = _parse_schedule(schedule, root.child(doc, "schedule"))
    if "condition" not in doc:
        raise root.fail("condition: is required")
    condition = _parse_condition(doc["condition"], root.child(doc, "condition"))
    return SegmentDefinition(
        name=name, condition=condition, description=description, schedule=schedule, source=source_name
    )


def load_segments(directory: str | Path) -> list[SegmentDefinition]:
    """Every ``*.yaml`` / ``*.yml`` definition under ``directory`` (sorted by name); names are unique."""
    base = Path(directory)
    if not base.is_dir():
        raise InvalidSegment(f"{base}:0: no such segments directory", file=str(base), line=0)
    files = sorted(p for p in base.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    seen: dict[str, str] = {}
    result = []
    for path in files:
        source = str(path)
        defn = parse_segment(path.read_text(encoding="utf-8"), source)
        if defn.name in seen:
            raise InvalidSegment(
                f"{source}:1: name: segment {defn.name!r} is already defined in {seen[defn.name]}",
                file=source,
                line=1,
                field="name",
            )
        seen[defn.name] = source
        result.append(defn)
    return sorted(result, key=lambda d: d.name)


def _reject_unknown(mapping: dict, allowed: Iterable[str], ctx: _Ctx) -> None:
    allowed = tuple(allowed)
    for key in mapping:
        if key not in allowed:
            raise ctx.child(mapping, key).fail(f"unknown field; expected one of {', '.join(allowed)}")


def _parse_schedule(value: Any, ctx: _Ctx) -> str:
    if not isinstance(value, str):
        raise ctx.fail("must be an EventBridge expression such as 'rate(1 hour)' or 'cron(0 6 * * ? *)'")
    value = value.strip()
    rate = _RATE_RE.match(value)
    if rate:
        amount, unit = int(rate.group(1)), rate.group(2)
        if amount < 1:
            raise ctx.fail("rate must be at least 1")
        if (amount == 1) != (not unit.endswith("s")):
            raise ctx.fail(f"write 'rate(1 {unit.rstrip('s')})' for one unit and plural units otherwise")
        return value
    if value.startswith("cron("):
        try:
            validate_schedule(value)
        except ScheduleError as exc:
            raise ctx.fail(str(exc)) from exc
        return value
    raise ctx.fail(
        f"must be an EventBridge expression such as 'rate(1 hour)' or 'cron(0 6 * * ? *)', got {value!r}"
    )


def _parse_condition(node: Any, ctx: _Ctx) -> Condition:
    if not isinstance(node, dict):
        raise ctx.fail(f"a condition must be a mapping with one of: {', '.join(_CONDITION_KINDS)}")
    kinds = [k for k in _CONDITION_KINDS if k in node]
    if len(kinds) != 1:
        found = f"found {', '.join(kinds)}" if kinds else f"found {', '.join(map(str, node)) or 'nothing'}"
        raise ctx.fail(f"a condition needs exactly one of {', '.join(_CONDITION_KINDS)} ({found})")
    kind = kinds[0]
    if kind in ("all", "any"):
        _reject_unknown(node, (kind,), ctx)
        items = node[kind]
        item_ctx = ctx.child(node, kind)
        if not isinstance(items, list) or not items:
            raise item_ctx.fail("must be a non-empty list of conditions")
        children = tuple(_parse_condition(item, item_ctx.child(items, i)) for i, item in enumerate(items))
        return AllOf(children) if kind == "all" else AnyOf(children)
    if kind == "not":
        _reject_unknown(node, ("not",), ctx)
        return Not(_parse_condition(node["not"], ctx.child(node, "not")))
    if kind in ("trait", "computed"):
        path = _parse_path(node[kind], ctx.child(node, kind))
        preds = _parse_predicates(node, ctx, exclude=(kind,))
        return FieldCondition(source=kind, path=path, predicates=preds)  # type: ignore[arg-type]
    if kind == "lifecycle":
        _reject_unknown(node, ("lifecycle",), ctx)
        value = node["lifecycle"]
        vctx = ctx.child(node, "lifecycle")
        stages = value if isinstance(value, list) else [value]
        if not stages:
            raise vctx.fail("must name at least one lifecycle stage")
        for i, stage in enumerate(stages):
            if stage not in LIFECYCLE_STAGES:
                sctx = vctx.child(value, i) if isinstance(value, list) else vctx
                raise sctx.fail(
                    f"unknown lifecycle stage {stage!r}; expected one of {', '.join(LIFECYCLE_STAGES)}"
                )
        return LifecycleCondition(tuple(stages))
    if kind == "consent":
        _reject_unknown(node, ("consent",), ctx)
        purpose = node["consent"]
        if not isinstance(purpose, str) or not _PATH_SEGMENT_RE.match(purpose):
            raise ctx.child(node, "consent").fail(f"must be a purpose name such as 'email', got {purpose!r}")
        return ConsentCondition(purpose)
    return _parse_behaviour(node, ctx)


@dataclass(frozen=True, slots=True)
class _Measure:
    """What an event condition measures and how it is compared (count ≥ 1 when none is given)."""

    measure: Literal["count", "sum", "first", "last"] = "count"
    predicates: tuple[Predicate, ...] = (Predicate("gte", 1),)
    property: tuple[str, ...] | None = None


def _parse_behaviour(node: dict, ctx: _Ctx) -> BehaviourCondition:
    _reject_unknown(node, _BEHAVIOUR_KEYS, ctx)
    event = node["event"]
    if not isinstance(event, str) or not event.strip():
        raise ctx.child(node, "event").fail("must be the name of a track event")
    if "within_days" not in node:
        raise ctx.fail("within_days: is required for an event condition (the time window, in days)")
    window = _positive_int(node["within_days"], ctx.child(node, "within_days"))
    where = _parse_where(node["where"], ctx.child(node, "where")) if "where" in node else ()
    measured = _parse_measure(node, ctx, window)
    return BehaviourCondition(
        event=event,
        within_days=window,
        measure=measured.measure,
        predicates=measured.predicates,
        where=where,
        property=measured.property,
    )


def _parse_where(items: Any, ctx: _Ctx) -> tuple[PropertyFilter, ...]:
    if not isinstance(items, list) or not items:
        raise ctx.fail("must be a non-empty list of property filters such as {property: currency, eq: EUR}")
    filters = []
    for i, item in enumerate(items):
        ictx = ctx.child(items, i)
        if not isinstance(item, dict) or "property" not in item:
            raise ictx.fail("a property filter is a mapping with 'property' and an operator")
        path = _parse_path(item["property"], ictx.child(item, "property"))
        filters.append(PropertyFilter(path, _parse_predicates(item, ictx, exclude=("property",))))
    return tuple(filters)


def _parse_measure(node: dict, ctx: _Ctx, window: int) -> _Measure:
    measures = [m for m in _MEASURES if m in node]
    if not measures:
        return _Measure()
    if len(measures) > 1 and not set(measures) <= {"min_count", "max_count"}:
        raise ctx.fail(f"use one measure of {', '.join(_MEASURES)} (found {', '.join(measures)})")
    if measures[0] in ("min_count", "max_count"):
        bounds = tuple(
            Predicate(op, _non_negative_int(node[key], ctx.child(node, key)))
            for key, op in (("min_count", "gte"), ("max_count", "lte"))
            if key in node
        )
        return _Measure(predicates=bounds)
    measure = measures[0]
    mctx = ctx.child(node, measure)
    spec = node[measure]
    if not isinstance(spec, dict):
        raise mctx.fail("must be a mapping of operators, e.g. {gte: 2}")
    if measure == "count":
        return _Measure(predicates=_parse_predicates(spec, mctx, exclude=(), numeric=True))
    if measure == "sum":
        if "property" not in spec:
            raise mctx.fail("property: is required (the property to sum)")
        prop = _parse_path(spec["property"], mctx.child(spec, "property"))
        return _Measure("sum", _parse_predicates(spec, mctx, exclude=("property",), numeric=True), prop)
    return _Measure("first" if measure == "first" else "last", _parse_time_predicates(spec, mctx, window))


def _parse_time_predicates(spec: dict, ctx: _Ctx, window: int) -> tuple[Predicate, ...]:
    """first / last: when the first (last) matching event happened, within the window."""
    _reject_unknown(spec, TIME_OPS, ctx)
    if not spec:
        raise ctx.fail(f"needs one of {', '.join(TIME_OPS)}")
    time_preds = []
    for op in TIME_OPS:
        if op in spec:
            days = _positive_int(spec[op], ctx.child(spec, op))
            if days > window:
                raise ctx.child(spec, op).fail(
                    f"{days} days reaches beyond the condition's window (within_days: {window})"
                )
            time_preds.append(Predicate(op, days))
    return tuple(time_preds)


def _parse_path(value: Any, ctx: _Ctx) -> tuple[str, ...]:
    if not isinstance(value, str) or not value:
        raise ctx.fail("must be a field name such as 'plan' or 'address.city'")
    parts = tuple(value.split("."))
    for part in parts:
        if not _PATH_SEGMENT_RE.match(part):
            raise ctx.fail(f"{value!r} is not a field path: use letters, digits and '_' separated by '.'")
    return parts


def _parse_predicates(
    node: dict, ctx: _Ctx, *, exclude: tuple[str, ...], numeric: bool = False
) -> tuple[Predicate, ...]:
    allowed = ("gt", "gte", "lt", "lte", "eq", "ne", "in", "not_in") if numeric else COMPARISON_OPS
    _reject_unknown(node, exclude + allowed, ctx)
    preds = []
    for op in allowed:
        if op not in node:
            continue
        vctx = ctx.child(node, op)
        preds.append(Predicate(op, _parse_operand(op, node[op], vctx, numeric=numeric)))
    if not preds:
        raise ctx.fail(f"needs an operator: one of {', '.join(allowed)}")
    return tuple(preds)


def _parse_operand(op: str, value: Any, ctx: _Ctx, *, numeric: bool) -> Any:
    if op == "exists":
        if not isinstance(value, bool):
            raise ctx.fail("must be true or false")
        return value
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            raise ctx.fail("must be a non-empty list of values")
        items = tuple(
            _parse_operand("eq", v, ctx.child(value, i), numeric=numeric) for i, v in enumerate(value)
        )
        kinds = {is_number(v) for v in items}
        if len(kinds) > 1:
            raise ctx.fail("mixes numbers and text; use values of one kind")
        return items
    if op == "contains":
        if not isinstance(value, str):
            raise ctx.fail("must be text")
        return value
    if value is None or isinstance(value, dict | list):
        raise ctx.fail(f"must be a number, text or true/false, got {value!r}")
    if (numeric or op in NUMERIC_ONLY_OPS) and not is_number(value):
        raise ctx.fail(f"must be a number, got {value!r}")
    if not isinstance(value, str | int | float | bool):
        # dates and timestamps that YAML resolves on its own: compare them as the text written
        return str(value)
    return value


def is_number(value: Any) -> bool:
    """A JSON number (booleans are not)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _positive_int(value: Any, ctx: _Ctx) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1 or value > MAX_WINDOW_DAYS:
        raise ctx.fail(f"must be a whole number of days from 1 to {MAX_WINDOW_DAYS}, got {value!r}")
    return value


def _non_negative_int(value: Any, ctx: _Ctx) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ctx.fail(f"must be a whole number, 0 or more, got {value!r}")
    return value
