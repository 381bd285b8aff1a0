"""Compile a segment definition to ONE sqlglot syntax tree, rendered for DuckDB or Athena (Trino).

Shape of the query (CTEs only when needed)::

    WITH ev AS (            -- events of the widest window, only the columns used, resolved to profiles
      SELECT COALESCE(iu.profile_id, ia.profile_id) AS profile_id, message_id, event, timestamp[, properties]
      FROM events e LEFT JOIN identity iu ON iu.identifier = 'user_id:' || e.user_id
                    LEFT JOIN identity ia ON ia.identifier = 'anonymous_id:' || e.anonymous_id
      WHERE e.dt BETWEEN '<first day>' AND '<today>' AND e.event = / IN (...) AND e.timestamp in window
            [AND the property filters, when there is one behaviour]
    ), agg AS (             -- one row per profile, one column per behaviour condition
      SELECT profile_id, COUNT(DISTINCT [CASE WHEN <what ev does not guarantee> THEN] message_id) AS b0, ...
      FROM ev WHERE profile_id IS NOT NULL GROUP BY profile_id
    )
    SELECT profile_id FROM agg WHERE <condition>                                  -- behaviour only, monotone
    SELECT DISTINCT p.profile_id FROM profiles p LEFT JOIN agg a ... WHERE <cond>  -- otherwise

Every leaf is made two-valued with COALESCE(..., FALSE) so that NOT means "not a member" in SQL as in
the Python predicate (SQL's NOT NULL would silently drop profiles lacking a trait). Duplicated
deliveries of one message are counted once (COUNT DISTINCT message_id; sums over distinct rows).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlglot import exp

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
from cdp.times import as_utc, format_date

if TYPE_CHECKING:
    # sqlglot's base node class (annotations only: older sqlglot releases name it differently)
    from sqlglot.expressions import Expr

DIALECTS = ("duckdb", "trino", "athena")

_COMPARE = {
    "eq": exp.EQ,
    "ne": exp.NEQ,
    "gt": exp.GT,
    "gte": exp.GTE,
    "lt": exp.LT,
    "lte": exp.LTE,
}


def compile_segment(defn: SegmentDefinition, *, now: datetime, dialect: str) -> str:
    """SQL returning one column ``profile_id``: the members of ``defn`` at ``now``."""
    return render(build_query(defn, now=now), dialect)


def render(tree: Expr, dialect: str) -> str:
    if dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r}; expected one of {DIALECTS}")
    if dialect == "duckdb":
        tree = tree.transform(_duckdb_json_scalar)
    # Athena engine 3 is Trino; sqlglot's athena dialect routes DML to Trino as well.
    return tree.sql(dialect="trino" if dialect == "athena" else dialect, identify=True)


def _duckdb_json_scalar(node: Expr) -> Expr:
    """Trino's JSON_EXTRACT_SCALAR is NULL for an object or array; DuckDB's ``->>`` gives its JSON
    text. Guard it so both engines (and the Python predicate) read non-scalars as missing."""
    if not isinstance(node, exp.JSONExtractScalar):
        return node
    kind = exp.Anonymous(this="JSON_TYPE", expressions=[node.this.copy(), node.expression.copy()])
    return exp.Case(
        ifs=[
            exp.If(this=kind.isin(exp.Literal.string("OBJECT"), exp.Literal.string("ARRAY")), true=exp.null())
        ],
        default=node.copy(),
    )


def build_query(defn: SegmentDefinition, *, now: datetime) -> exp.Select:
    """The dialect-neutral syntax tree of the segment query."""
    now = as_utc(now)
    behaviours = list(dict.fromkeys(defn.behaviours))  # distinct, in order of appearance
    metric_names = {b: f"b{i}" for i, b in enumerate(behaviours)}
    ctx = _Ctx(now=now, metric_names=metric_names)

    needs_profiles = _reads_profile(defn.condition) or _holds_without_events(defn.condition)
    agg_alias = "a"
    where = _condition(defn.condition, ctx, agg_alias)

    if not behaviours:
        return (
            exp.select(exp.column("profile_id", "p"))
            .distinct()
            .from_(exp.table_("profiles", alias="p"))
            .where(where)
        )

    query: exp.Select
    if needs_profiles:
        query = (
            exp.select(exp.column("profile_id", "p"))
            .distinct()
            .from_(exp.table_("profiles", alias="p"))
            .join(
                exp.table_("agg", alias=agg_alias),
                on=exp.column("profile_id", agg_alias).eq(exp.column("profile_id", "p")),
                join_type="left",
            )
            .where(where)
        )
    else:
        query = (
            exp.select(exp.column("profile_id", agg_alias))
            .from_(exp.table_("agg", alias=agg_alias))
            .where(where)
        )
    query = query.with_("ev", as_=_events_cte(behaviours, now))
    return query.with_("agg", as_=_aggregate_cte(behaviours, ctx))


# ---------------------------------------------------------------- events and aggregates


def _events_cte(behaviours: list[BehaviourCondition], now: datetime) -> exp.Select:
    widest = max(b.within_days for b in behaviours)
    start = now - timedelta(days=widest)
    single = len(behaviours) == 1
    # With one behaviour its property filters go to the WHERE clause (the aggregate needs no CASE).
    pushed = (
        [
            _leaf(_json(exp.column("properties", "e"), f.path), p)
            for f in behaviours[0].where
            for p in f.predicates
        ]
        if single
        else []
    )
    uses_properties = any(b.property for b in behaviours) or (not single and any(b.where for b in behaviours))
    uses_sum = any(b.measure == "sum" for b in behaviours)
    columns: list[Expr] = [
        exp.Coalesce(this=exp.column("profile_id", "iu"), expressions=[exp.column("profile_id", "ia")]).as_(
            "profile_id"
        ),
        exp.column("message_id", "e").as_("message_id"),
        exp.column("event", "e").as_("event"),
        exp.column("timestamp", "e").as_("timestamp"),
    ]
    if uses_properties:
        columns.append(exp.column("properties", "e").as_("properties"))
    events = sorted({b.event for b in behaviours})
    select = (
        exp.select(*columns)
        .from_(exp.table_("events", alias="e"))
        .join(
            exp.table_("identity", alias="iu"),
            on=exp.column("identifier", "iu").eq(
                exp.DPipe(this=exp.Literal.string("user_id:"), expression=exp.column("user_id", "e"))
            ),
            join_type="left",
        )
        .join(
            exp.table_("identity", alias="ia"),
            on=exp.column("identifier", "ia").eq(
                exp.DPipe(
                    this=exp.Literal.string("anonymous_id:"), expression=exp.column("anonymous_id", "e")
                )
            ),
            join_type="left",
        )
        .where(
            exp.and_(
                # dt is the partition key (a string 'YYYY-MM-DD' from the UTC timestamp): both engines
                # prune on it, so only the window's days are read.
                exp.column("dt", "e").between(
                    exp.Literal.string(format_date(start)),
                    exp.Literal.string(format_date(now)),
                ),
                # one event: '=' (pushed down and evaluated faster than a one-element IN)
                exp.column("event", "e").eq(exp.Literal.string(events[0]))
                if len(events) == 1
                else exp.column("event", "e").isin(*[exp.Literal.string(e) for e in events]),
                exp.GT(this=exp.column("timestamp", "e"), expression=_timestamp(start)),
                exp.LTE(this=exp.column("timestamp", "e"), expression=_timestamp(now)),
                *pushed,
            )
        )
    )
    if uses_sum:
        # A redelivered message is the same row twice: summing distinct rows counts it once.
        select = select.distinct()
    return select


def _aggregate_cte(behaviours: list[BehaviourCondition], ctx: _Ctx) -> exp.Select:
    columns: list[Expr] = [exp.column("profile_id")]
    widest = max(b.within_days for b in behaviours)
    several_events = len({b.event for b in behaviours}) > 1
    for b in behaviours:
        # Only what the events CTE's WHERE does not already guarantee: a bare aggregate is faster.
        parts: list[Expr] = []
        if several_events:
            parts.append(exp.column("event").eq(exp.Literal.string(b.event)))
        if b.within_days < widest:
            start = _timestamp(ctx.now - timedelta(days=b.within_days))
            parts.append(exp.GT(this=exp.column("timestamp"), expression=start))
        if len(behaviours) > 1:
            parts += [
                _leaf(_json(exp.column("properties"), f.path), p) for f in b.where for p in f.predicates
            ]
        matches = exp.and_(*parts) if parts else None

        def only_matching(value: Expr, matches: Expr | None = matches) -> Expr:
            return _case(matches, value) if matches is not None else value

        metric: Expr
        if b.measure == "count":
            metric = exp.Count(this=exp.Distinct(expressions=[only_matching(exp.column("message_id"))]))
        elif b.measure == "sum":
            assert b.property is not None
            metric = exp.Sum(this=only_matching(_number(_json(exp.column("properties"), b.property))))
        elif b.measure == "first":
            metric = exp.Min(this=only_matching(exp.column("timestamp")))
        else:
            metric = exp.Max(this=only_matching(exp.column("timestamp")))
        columns.append(metric.as_(ctx.metric_names[b]))
    return (
        exp.select(*columns)
        .from_(exp.to_table("ev"))
        .where(exp.column("profile_id").is_(exp.null()).not_())
        .group_by(exp.column("profile_id"))
    )


# ---------------------------------------------------------------- conditions


@dataclass(frozen=True)
class _Ctx:
    now: datetime
    metric_names: dict[BehaviourCondition, str]


def _condition(cond: Condition, ctx: _Ctx, agg: str) -> Expr:
    if isinstance(cond, AllOf):
        return exp.and_(*[_condition(c, ctx, agg) for c in cond.conditions])
    if isinstance(cond, AnyOf):
        return exp.or_(*[_condition(c, ctx, agg) for c in cond.conditions])
    if isinstance(cond, Not):
        return exp.not_(_condition(cond.condition, ctx, agg))
    if isinstance(cond, FieldCondition):
        column = "traits" if cond.source == "trait" else "computed"
        value = _json(exp.column(column, "p"), cond.path)
        return _two_valued(exp.and_(*[_leaf(value, p) for p in cond.predicates]))
    if isinstance(cond, LifecycleCondition):
        return _two_valued(
            exp.column("lifecycle_stage", "p").isin(*[exp.Literal.string(s) for s in cond.stages])
        )
    if isinstance(cond, ConsentCondition):
        granted = _json(exp.column("consent", "p"), (cond.purpose,)).eq(exp.Literal.string("true"))
        return _two_valued(granted)
    if isinstance(cond, BehaviourCondition):
        metric = exp.column(ctx.metric_names[cond], agg)
        if cond.measure in ("count", "sum"):
            value = exp.Coalesce(this=metric, expressions=[exp.Literal.number(0)])
            return _two_valued(exp.and_(*[_numeric_leaf(value, p) for p in cond.predicates]))
        parts = []
        for p in cond.predicates:
            bound = _timestamp(ctx.now - timedelta(days=p.value))
            parts.append(
                exp.GT(this=metric, expression=bound)
                if p.op == "within_days"
                else exp.LTE(this=metric, expression=bound)
            )
        return _two_valued(exp.and_(*parts))
    raise InvalidSegment(f"cannot compile condition {cond!r}")


def _leaf(value: Expr, p: Predicate) -> Expr:
    """A comparison of a JSON scalar (text) with a literal, typed by the literal."""
    if p.op == "exists":
        is_null = value.is_(exp.null())
        return is_null.not_() if p.value else is_null
    if p.op == "contains":
        return exp.GT(
            this=exp.StrPosition(this=value, substr=exp.Literal.string(p.value)),
            expression=exp.Literal.number(0),
        )
    if p.op in ("in", "not_in"):
        numeric = all(is_number(v) for v in p.value)
        subject = _number(value) if numeric else value
        test = subject.isin(*[_literal(v) for v in p.value])
        return exp.not_(test) if p.op == "not_in" else test
    if is_number(p.value):
        return _COMPARE[p.op](this=_number(value), expression=_literal(p.value))
    return _COMPARE[p.op](this=value, expression=_literal(p.value))


def _numeric_leaf(value: Expr, p: Predicate) -> Expr:
    if p.op in ("in", "not_in"):
        test = value.isin(*[_literal(v) for v in p.value])
        return exp.not_(test) if p.op == "not_in" else test
    return _COMPARE[p.op](this=value, expression=_literal(p.value))


def _two_valued(e: Expr) -> Expr:
    return exp.Coalesce(this=exp.Paren(this=e), expressions=[exp.false()])


def _json(column: Expr, path: tuple[str, ...]) -> Expr:
    return exp.JSONExtractScalar(this=column, expression=exp.Literal.string("$." + ".".join(path)))


def _number(e: Expr) -> Expr:
    return exp.TryCast(this=e, to=exp.DataType.build("double"))


def _case(when: Expr, then: Expr) -> Expr:
    return exp.Case(ifs=[exp.If(this=when, true=then)])


def _literal(value: object) -> Expr:
    if isinstance(value, bool):
        return exp.Literal.string("true" if value else "false")
    if isinstance(value, int | float):
        return exp.Literal.number(value)
    return exp.Literal.string(str(value))


def _timestamp(moment: datetime) -> Expr:
    text = as_utc(moment).replace(tzinfo=None).isoformat(sep=" ", timespec="milliseconds")
    return exp.cast(exp.Literal.string(text), exp.DataType.build("timestamp"))


# ---------------------------------------------------------------- analysis


def _reads_profile(cond: Condition) -> bool:
    if isinstance(cond, AllOf | AnyOf):
        return any(_reads_profile(c) for c in cond.conditions)
    if isinstance(cond, Not):
        return _reads_profile(cond.condition)
    return not isinstance(cond, BehaviourCondition)


def _holds_without_events(cond: Condition) -> bool:
    """Whether a profile with no matching event can satisfy the condition (then every profile is a
    candidate and the query must start from the profiles table, not from the events)."""
    if isinstance(cond, AllOf):
        return all(_holds_without_events(c) for c in cond.conditions)
    if isinstance(cond, AnyOf):
        return any(_holds_without_events(c) for c in cond.conditions)
    if isinstance(cond, Not):
        # conservative: a negation may hold for a profile that has no event at all
        return True
    if isinstance(cond, BehaviourCondition):
        if cond.measure in ("first", "last"):
            return False
        return all(_numeric_holds(0, p) for p in cond.predicates)
    return True


def _numeric_holds(value: float, p: Predicate) -> bool:
    if p.op == "in":
        return value in p.value
    if p.op == "not_in":
        return value not in p.value
    return {
        "eq": value == p.value,
        "ne": value != p.value,
        "gt": value > p.value,
        "gte": value >= p.value,
        "lt": value < p.value,
        "lte": value <= p.value,
    }[p.op]
