"""The scheduled report job: query the lake, fold the rows into tables, write them with a dashboard.

Output, under the lake's ``reports/`` prefix (private, like the rest of the lake)::

    reports/run=<id>/<table>.json     one small JSON table per report (a list of rows)
    reports/run=<id>/meta.json        range, granularity, when computed, events, bytes scanned
    reports/run=<id>/dashboard.html   the self-contained dashboard
    reports/latest.json               {"run_id": ..., "prefix": ...}: what `cdp report open` opens

A journey map that does not parse does not stop the other reports: its error is shown instead.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import pyarrow.fs as pafs

from cdp.campaigns.definition import Campaign
from cdp.campaigns.results import campaign_results
from cdp.errors import CdpError
from cdp.reports import REPORTS_PREFIX, ReportRange, compute, queries
from cdp.reports.dashboard import render_dashboard
from cdp.reports.journey import JourneyMap
from cdp.segments.engines import QueryEngine, QueryResult
from cdp.times import format_time

QUARANTINE_PREFIX = "quarantine"
TABLES = ("funnel", "stages_over_time", "transitions", "time_in_stage", "churn", "journey", "journey_rules",
          "cohorts", "events_daily", "events_by_source", "quarantine", "segments", "campaigns")


class RunHistory(Protocol):
    """Completed runs of a segment (the membership store's run records), oldest first."""

    def runs(self, segment: str) -> list[dict[str, Any]]: ...


@dataclass
class Report:
    run_id: str
    meta: dict[str, Any]
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


class _Counting:
    """The engine, adding up bytes scanned and queries run."""

    def __init__(self, engine: QueryEngine) -> None:
        self.engine, self.bytes_scanned, self.queries = engine, 0, 0
        self.dialect = engine.dialect
        self.seconds: list[float] = []

    def run(self, sql: str) -> QueryResult:
        started = time.monotonic()
        result = self.engine.run(sql)
        self.seconds.append(round(time.monotonic() - started, 2))
        self.bytes_scanned += result.bytes_scanned
        self.queries += 1
        return result

    def rows(self, sql: str) -> list[dict[str, Any]]:
        return self.run(sql).rows


def quarantine_counts(fs: pafs.FileSystem, root: str, window: ReportRange) -> list[dict[str, Any]]:
    """Quarantined entries per day and reason, read from ``quarantine/dt=<day>/*.jsonl`` (one listing)."""
    counts: Counter[tuple[str, str]] = Counter()
    first, last = window.first.isoformat(), window.last.isoformat()
    folder = f"{root}/{QUARANTINE_PREFIX}"
    for info in fs.get_file_info(pafs.FileSelector(folder, recursive=True, allow_not_found=True)):
        partition = info.path[len(folder):].lstrip("/").split("/", 1)[0]
        day = partition[3:] if partition.startswith("dt=") else ""
        if info.type != pafs.FileType.File or not info.path.endswith(".jsonl") or not first <= day <= last:
            continue
        with fs.open_input_stream(info.path) as stream:
            for line in stream.read().decode("utf-8", "replace").splitlines():
                try:
                    reason = str(json.loads(line).get("reason") or compute.UNKNOWN)
                except (ValueError, AttributeError):
                    reason = "unreadable"
                counts[(day, reason)] += 1
    return [{"day": d, "reason": r, "entries": n} for (d, r), n in sorted(counts.items())]


def compute_report(*, engine: QueryEngine, window: ReportRange, journey: JourneyMap | CdpError, now: datetime,
                   run_id: str, segment_runs: dict[str, list[dict[str, Any]]] | None = None,
                   quarantine: Callable[[ReportRange], list[dict[str, Any]]] | None = None,
                   campaigns: Sequence[Campaign] = ()) -> Report:
    started = time.monotonic()
    q, dialect = _Counting(engine), engine.dialect
    profiles = q.rows(queries.build(queries.PROFILES, dialect))
    daily = q.rows(queries.ranged(queries.EVENTS_DAILY, dialect, window))
    activity = q.rows(queries.ranged(queries.COHORT_ACTIVITY, dialect, window))
    tables: dict[str, list[dict[str, Any]]] = {}
    tables["funnel"] = compute.funnel(profiles)
    tables["stages_over_time"] = compute.stages_over_time(profiles, window, now)
    tables["transitions"] = compute.transitions(profiles, window)
    tables["time_in_stage"] = compute.time_in_stage(profiles, now)
    tables["churn"] = compute.churn(tables["transitions"], window)
    journey_error = None
    if isinstance(journey, JourneyMap):
        rules_sql, deepest_sql = queries.journey_queries(journey, dialect, window)
        tables["journey"], tables["journey_rules"] = compute.journey(journey, q.rows(rules_sql), q.rows(deepest_sql))
    else:
        journey_error = journey.reason
        tables["journey"], tables["journey_rules"] = [], []
    tables["cohorts"] = compute.cohorts(profiles, activity, window)
    tables["events_daily"], tables["events_by_source"], health = compute.events_health(daily, window, now)
    tables["quarantine"] = quarantine(window) if quarantine is not None else []
    tables["segments"] = compute.segment_sizes(segment_runs or {}, window)
    # Sends and their outcomes since the range began (a send's outcomes may come days later).
    tables["campaigns"] = ([r.to_dict() for r in campaign_results(q, campaigns, since=window.first.isoformat())]
                           if campaigns else [])
    meta = {
        "run_id": run_id,
        "from": window.first.isoformat(),
        "to": window.last.isoformat(),
        "granularity": window.granularity,
        "computed_at": format_time(now),
        "events": health["events"],
        "profiles": len(profiles),
        "health": health,
        "journey_error": journey_error,
        "queries": q.queries,
        "query_seconds": q.seconds,
        "bytes_scanned": q.bytes_scanned,
        "seconds": round(time.monotonic() - started, 2),
    }
    return Report(run_id=run_id, meta=meta, tables=tables)


def run_prefix(root: str, run_id: str) -> str:
    return f"{root}/{REPORTS_PREFIX}/run={run_id}"


def write_report(report: Report, fs: pafs.FileSystem, root: str) -> str:
    """Write the tables, meta and dashboard, then point ``reports/latest.json`` at them (last, so a
    reader never follows the pointer to a half-written run). Returns the dashboard's path."""
    prefix = run_prefix(root, report.run_id)
    if isinstance(fs, pafs.LocalFileSystem):
        fs.create_dir(prefix, recursive=True)
    for name, rows in report.tables.items():
        _put(fs, f"{prefix}/{name}.json", json.dumps(rows, default=str).encode())
    _put(fs, f"{prefix}/meta.json", json.dumps(report.meta, default=str, indent=2).encode())
    dashboard = f"{prefix}/dashboard.html"
    _put(fs, dashboard, render_dashboard(report.meta, report.tables).encode("utf-8"))
    pointer = {"run_id": report.run_id, "prefix": f"{REPORTS_PREFIX}/run={report.run_id}"}
    _put(fs, f"{root}/{REPORTS_PREFIX}/latest.json", json.dumps(pointer).encode())
    return dashboard


def read_latest(fs: pafs.FileSystem, root: str) -> dict[str, Any] | None:
    """``reports/latest.json`` (run id and prefix), or None before the first run."""
    try:
        with fs.open_input_stream(f"{root}/{REPORTS_PREFIX}/latest.json") as stream:
            pointer: dict[str, Any] = json.loads(stream.read())
    except (FileNotFoundError, OSError):
        return None
    return pointer


def read_object(fs: pafs.FileSystem, root: str, key: str) -> bytes:
    with fs.open_input_stream(f"{root}/{key}") as stream:
        data: bytes = stream.read()
    return data


def _put(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    with fs.open_output_stream(path) as out:
        out.write(data)


def segment_runs(history: RunHistory, segments: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    return {name: history.runs(name) for name in segments}
