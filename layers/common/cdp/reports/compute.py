"""Fold query rows into the report tables (lists of plain dicts, JSON-ready).

Pure functions: the report job feeds them the engine's rows; tests feed them rows they computed
another way. Stage names are those of :data:`cdp.identity.computed.STAGES`.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from statistics import median
from typing import Any

from cdp.identity.computed import STAGES
from cdp.reports import ReportRange
from cdp.reports.journey import JourneyMap
from cdp.times import parse_timestamp

NEW = "(new)"  # the "from" of a profile's first stage
UNKNOWN = "(none)"
_CHANGES = "_changes"  # where a row keeps its parsed history

Row = dict[str, Any]


def _history(profile: Row) -> list[tuple[datetime, str]]:
    """(when, stage) of a snapshot row's lifecycle_history in the order the profile recorded them
    (unify records a change at the time of the event that caused it, so times need not ascend when
    events arrive out of order); unreadable -> empty. Parsed once per row: three reports read it, and
    on a large lake the parsing outweighs the queries."""
    cached = profile.get(_CHANGES)
    if cached is None:
        cached = profile[_CHANGES] = _parse_history(profile.get("history"))
    return cached  # type: ignore[no-any-return]


def _parse_history(value: Any) -> list[tuple[datetime, str]]:
    try:
        changes = json.loads(value) if isinstance(value, str) else (value or [])
    except ValueError:
        return []
    found = []
    for change in changes:
        try:
            found.append((parse_timestamp(change["at"]), str(change["stage"])))
        except (KeyError, TypeError, ValueError):
            continue
    return found


def _stage_order(stages: Iterable[str]) -> list[str]:
    known = [s for s in STAGES if s in set(stages)]
    return known + sorted(set(stages) - set(STAGES))


def funnel(profiles: list[Row]) -> list[Row]:
    """People per lifecycle stage now (from the snapshot), in lifecycle order, every stage listed."""
    counts = Counter(p.get("stage") or UNKNOWN for p in profiles)
    known = Counter(p.get("stage") or UNKNOWN for p in profiles if p.get("known"))
    return [{"stage": s, "people": counts.get(s, 0), "known": known.get(s, 0)}
            for s in _stage_order([*STAGES, *counts])]


def stages_over_time(profiles: list[Row], window: ReportRange, now: datetime) -> list[Row]:
    """People per stage at the end of each period: the stage of each profile's last change recorded
    by then; a period that ends after ``now`` shows the stages now (the snapshot's)."""
    histories = [(p.get("stage"), _history(p)) for p in profiles]
    rows: list[Row] = []
    ends = [*window.periods()[1:], None]
    for start, following in zip(window.periods(), ends, strict=True):
        cut = min(following, _next_day(window.last)) if following else _next_day(window.last)
        counts: Counter[str] = Counter()
        for current, history in histories:
            stage = current if cut > now.date() else None
            if stage is None:
                for when, name in history:
                    if when.date() < cut:
                        stage = name
            if stage is not None:
                counts[stage] += 1
        rows.extend({"period": start.isoformat(), "stage": s, "people": counts.get(s, 0)}
                    for s in _stage_order([*STAGES, *counts]))
    return rows


def _next_day(day: date) -> date:
    return date.fromordinal(day.toordinal() + 1)


def transitions(profiles: list[Row], window: ReportRange) -> list[Row]:
    """Stage changes (from -> to) per period, for changes inside the range. A profile's first
    recorded stage comes from NEW."""
    counts: Counter[tuple[str, str, str]] = Counter()
    for p in profiles:
        previous = NEW
        for when, stage in _history(p):
            if window.first <= when.date() <= window.last:
                counts[(window.period_of(when.date()), previous, stage)] += 1
            previous = stage
    return [{"period": k[0], "from": k[1], "to": k[2], "people": n} for k, n in sorted(counts.items())]


def time_in_stage(profiles: list[Row], now: datetime) -> list[Row]:
    """Days spent in each stage: completed stays (ended by a change) and ongoing ones (until now)."""
    done: dict[str, list[float]] = defaultdict(list)
    ongoing: dict[str, list[float]] = defaultdict(list)
    for p in profiles:
        history = _history(p)
        for (start, stage), (end, _) in zip(history, history[1:], strict=False):
            done[stage].append((end - start).total_seconds() / 86400)
        if history:
            start, stage = history[-1]
            ongoing[stage].append(max(0.0, (now - start).total_seconds() / 86400))
    rows = []
    for s in _stage_order([*done, *ongoing]):
        rows.append({
            "stage": s,
            "completed_stays": len(done[s]),
            "median_days": round(median(done[s]), 2) if done[s] else None,
            "ongoing_stays": len(ongoing[s]),
            "median_days_so_far": round(median(ongoing[s]), 2) if ongoing[s] else None,
        })
    return rows


def churn(transition_rows: list[Row], window: ReportRange) -> list[Row]:
    """Per period: profiles that churned, and churned profiles that came back."""
    churned: Counter[str] = Counter()
    returned: Counter[str] = Counter()
    for t in transition_rows:
        if t["to"] == "churned":
            churned[t["period"]] += t["people"]
        if t["from"] == "churned":
            returned[t["period"]] += t["people"]
    return [{"period": p.isoformat(), "churned": churned.get(p.isoformat(), 0),
             "returned": returned.get(p.isoformat(), 0)} for p in window.periods()]


def journey(journey_map: JourneyMap, rule_rows: list[Row], deepest_rows: list[Row]) -> tuple[list[Row], list[Row]]:
    """(stages, rules): per 5A stage the people whose deepest stage it is, those who reached at least
    it, their known contacts and the conversion from the stage before; per rule its matches."""
    by_rule = {int(r["rule"]): r for r in rule_rows if r.get("rule") is not None}
    deepest: Counter[str] = Counter()
    deepest_known: Counter[str] = Counter()
    for r in deepest_rows:
        if r.get("rule") is None:
            continue
        stage = journey_map.rules[int(r["rule"])].stage
        deepest[stage] += int(r["people"])
        deepest_known[stage] += int(r["known"])
    stages = list(journey_map.stages)
    rows: list[Row] = []
    for i, stage in enumerate(stages):
        reached = sum(deepest[s] for s in stages[i:])
        known = sum(deepest_known[s] for s in stages[i:])
        before = rows[-1]["reached"] if rows else None
        rows.append({"stage": stage, "deepest": deepest[stage], "reached": reached, "known": known,
                     "conversion": round(reached / before, 4) if before else None})
    rules = [{"stage": rule.stage, "rule": rule.label,
              "events": int(by_rule.get(i, {}).get("events", 0)),
              "people": int(by_rule.get(i, {}).get("people", 0))}
             for i, rule in enumerate(journey_map.rules)]
    return rows, rules


def cohorts(profiles: list[Row], activity: list[Row], window: ReportRange) -> list[Row]:
    """Retention by first-seen week: of the people first seen in a week, how many were active in each
    later week of the range (week 0 is the first-seen week itself)."""
    sizes: Counter[str] = Counter()
    for p in profiles:
        if p.get("first_day"):
            day = date.fromisoformat(str(p["first_day"])[:10])
            if window.first <= day <= window.last:
                sizes[(date.fromordinal(day.toordinal() - day.weekday())).isoformat()] += 1
    rows = []
    for a in activity:
        cohort, week = str(a["cohort"])[:10], str(a["week"])[:10]
        if cohort not in sizes or week < cohort:
            continue
        offset = (date.fromisoformat(week) - date.fromisoformat(cohort)).days // 7
        rows.append({"cohort": cohort, "week": offset, "people": int(a["people"]), "size": sizes[cohort],
                     "retention": round(int(a["people"]) / sizes[cohort], 4)})
    return sorted(rows, key=lambda r: (r["cohort"], r["week"]))


def events_health(daily: list[Row], window: ReportRange, now: datetime) -> tuple[list[Row], list[Row], Row]:
    """(events per day and type, events per source, freshness): missing days are listed with 0."""
    per_day: dict[str, Counter[str]] = {d.isoformat(): Counter() for d in window.days()}
    by_source: Counter[str] = Counter()
    delays: list[tuple[float, int]] = []
    last = None
    for r in daily:
        per_day.setdefault(str(r["day"]), Counter())[r["type"] or UNKNOWN] += int(r["events"])
        by_source[r["source"] or UNKNOWN] += int(r["events"])
        if r.get("avg_delay_seconds") is not None:
            delays.append((float(r["avg_delay_seconds"]), int(r["events"])))
        if r.get("last_received") is not None:
            last = max(last or 0.0, float(r["last_received"]))
    days = [{"day": d, "type": t, "events": n} for d, types in sorted(per_day.items())
            for t, n in (sorted(types.items()) or [(UNKNOWN, 0)])]
    total = sum(n for _, n in delays)
    freshness = {
        "events": sum(by_source.values()),
        "minutes_since_last_event": round((now.timestamp() - last) / 60, 1) if last is not None else None,
        "avg_delay_seconds": round(sum(d * n for d, n in delays) / total, 1) if total else None,
        "days_without_events": sum(1 for types in per_day.values() if not types),
    }
    return days, [{"source": s, "events": n} for s, n in sorted(by_source.items())], freshness


def segment_sizes(runs: Mapping[str, list[Row]], window: ReportRange) -> list[Row]:
    """Per segment and period: members after the period's last run, and entries/exits summed."""
    rows = []
    for segment, reports in sorted(runs.items()):
        by_period: dict[str, list[Row]] = defaultdict(list)
        for r in sorted(reports, key=lambda r: str(r.get("at", ""))):
            try:
                day = parse_timestamp(r["at"]).date()
            except (KeyError, ValueError):
                continue
            if window.first <= day <= window.last and not r.get("replayed"):
                by_period[window.period_of(day)].append(r)
        for period, rs in sorted(by_period.items()):
            rows.append({"segment": segment, "period": period, "members": int(rs[-1].get("members", 0)),
                         "entered": sum(int(r.get("entered", 0)) for r in rs),
                         "exited": sum(int(r.get("exited", 0)) for r in rs), "runs": len(rs)})
    return rows
