"""The report queries: sqlglot trees, rendered for DuckDB or Athena by the segments' ``render``.

Each query is written once (in DuckDB's syntax, parsed by sqlglot) with ``:placeholders`` filled by
literals, so values never reach the SQL as text. Only strings and numbers come back: days are
``dt`` partitions or dates cast to text, so both engines return the same rows.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import sqlglot
from sqlglot import exp

from cdp.reports import ReportRange
from cdp.reports.journey import JourneyMap, JourneyRule
from cdp.segments.compiler import render

if TYPE_CHECKING:
    # sqlglot's base node class (annotations only: older sqlglot releases name it differently)
    from sqlglot.expressions import Expr

# Events of the range, each resolved to its profile through the identity snapshot (as segments do).
_RESOLVED = """
SELECT COALESCE(iu.profile_id, ia.profile_id) AS profile_id, e.message_id, e.type, e.event, e.timestamp,
       e.properties, e.dt
FROM events AS e
LEFT JOIN identity AS iu ON iu.identifier = 'user_id:' || e.user_id
LEFT JOIN identity AS ia ON ia.identifier = 'anonymous_id:' || e.anonymous_id
WHERE e.dt BETWEEN :first AND :last
"""

EVENTS_DAILY = """
SELECT e.dt AS day, COALESCE(e.source_id, '') AS source, COALESCE(e.type, '') AS type,
       COUNT(*) AS events, MAX(EPOCH(e.received_at)) AS last_received,
       AVG(EPOCH(e.received_at) - EPOCH(e.timestamp)) AS avg_delay_seconds
FROM events AS e
WHERE e.dt BETWEEN :first AND :last
GROUP BY 1, 2, 3
"""

PROFILES = """
SELECT p.profile_id, p.lifecycle_stage AS stage, p.lifecycle_history AS history,
       CASE WHEN p.email IS NULL THEN 0 ELSE 1 END AS known,
       CAST(CAST(p.first_seen AS DATE) AS VARCHAR) AS first_day
FROM profiles AS p
"""

COHORT_ACTIVITY = f"""
WITH ev AS ({_RESOLVED})
SELECT CAST(CAST(DATE_TRUNC('week', p.first_seen) AS DATE) AS VARCHAR) AS cohort,
       CAST(CAST(DATE_TRUNC('week', ev.timestamp) AS DATE) AS VARCHAR) AS week,
       COUNT(DISTINCT ev.profile_id) AS people
FROM ev JOIN profiles AS p ON p.profile_id = ev.profile_id
GROUP BY 1, 2
"""

_JOURNEY_STAGED = f"""
WITH ev AS ({_RESOLVED}),
staged AS (SELECT ev.profile_id, ev.message_id, :rule AS rule FROM ev WHERE ev.profile_id IS NOT NULL)
"""

JOURNEY_RULES = _JOURNEY_STAGED + """
SELECT staged.rule, COUNT(DISTINCT staged.message_id) AS events, COUNT(DISTINCT staged.profile_id) AS people
FROM staged WHERE staged.rule IS NOT NULL GROUP BY 1
"""

JOURNEY_DEEPEST = _JOURNEY_STAGED + """,
deepest AS (SELECT staged.profile_id, MAX(staged.rule) AS rule FROM staged WHERE staged.rule IS NOT NULL
            GROUP BY 1)
SELECT d.rule, COUNT(*) AS people, COUNT(p.email) AS known
FROM deepest AS d LEFT JOIN profiles AS p ON p.profile_id = d.profile_id
GROUP BY 1
"""


@cache
def _parsed(sql: str) -> Expr:
    return sqlglot.parse_one(sql, read="duckdb")


def build(sql: str, dialect: str, **values: object) -> str:
    """``sql`` with its placeholders filled (text -> string literal, Expression as is) for ``dialect``."""
    literals = {k: v if isinstance(v, exp.Expression) else exp.Literal.string(str(v)) for k, v in values.items()}
    tree = exp.replace_placeholders(_parsed(sql).copy(), **literals)
    return render(tree, dialect)


def ranged(sql: str, dialect: str, window: ReportRange, **values: object) -> str:
    return build(sql, dialect, first=window.first.isoformat(), last=window.last.isoformat(), **values)


def _matches(rule: JourneyRule) -> Expr:
    column = "event" if rule.event is not None else "type"
    condition: Expr = exp.column(column, "ev").eq(exp.Literal.string(rule.event or rule.type or ""))
    for path, values in rule.where:
        extracted = exp.JSONExtractScalar(this=exp.column("properties", "ev"),
                                          expression=exp.Literal.string("$." + ".".join(path)))
        condition = exp.and_(condition, extracted.isin(*(exp.Literal.string(v) for v in values)))
    return condition


def rule_case(journey: JourneyMap) -> Expr:
    """The index of the deepest rule an event matches (rules are in stage order), else NULL."""
    order = list(enumerate(journey.rules))[::-1]
    return exp.Case(ifs=[exp.If(this=_matches(rule), true=exp.Literal.number(i)) for i, rule in order])


def journey_queries(journey: JourneyMap, dialect: str, window: ReportRange) -> tuple[str, str]:
    case = rule_case(journey)
    return (ranged(JOURNEY_RULES, dialect, window, rule=case),
            ranged(JOURNEY_DEEPEST, dialect, window, rule=case))
