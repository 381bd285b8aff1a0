"""``cdp report``: run the reports on the lake, show their tables, open the dashboard.

Against the running ``cdp dev`` stack (DuckDB over the emulated lake) or, with a deployed stack's
environment, against AWS (Athena; ``open`` prints a presigned URL of the private dashboard).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from cdp.settings import Settings

TABLES = {"funnel": ["stage", "people", "known"],
          "transitions": ["period", "from", "to", "people"],
          "cohorts": ["cohort", "week", "people", "size", "retention"],
          "journey": ["stage", "reached", "deepest", "known", "conversion"],
          "time_in_stage": ["stage", "completed_stays", "median_days", "ongoing_stays", "median_days_so_far"],
          "churn": ["period", "churned", "returned"],
          "segments": ["segment", "period", "members", "entered", "exited"],
          "quarantine": ["day", "reason", "entries"]}
LOCAL_COPY = Path(".cdp") / "reports"


def run_reports(settings: Settings, *, first: date | None = None, last: date | None = None, by: str = "week",
                now: datetime | None = None) -> dict[str, Any]:
    """Compute and write the reports as the ReportFunction does; returns the run's meta."""
    from cdp.adapters.engines import query_engine
    from cdp.adapters.lake import bucket_filesystem
    from cdp.adapters.run_history import DynamoRunHistory
    from cdp.campaigns.definition import load_campaigns
    from cdp.errors import InvalidJourney
    from cdp.jobs.report_job import compute_report, quarantine_counts, segment_runs, write_report
    from cdp.reports import DEFAULT_DAYS, ReportRange
    from cdp.reports.journey import JourneyMap, load_journey
    from cdp.segments.catalog import all_segments

    from .template import REPO_ROOT

    now = now or datetime.now(UTC)
    last = last or now.date()
    first = first or last - timedelta(days=DEFAULT_DAYS)
    journey: JourneyMap | InvalidJourney
    try:
        journey = load_journey(REPO_ROOT / "config" / "journey.yaml")
    except InvalidJourney as exc:
        journey = exc
    fs, root = bucket_filesystem(settings), settings.lake_bucket
    report = compute_report(
        engine=query_engine(settings), window=ReportRange(first, last, by), journey=journey, now=now,
        run_id=now.strftime("%Y%m%dT%H%M%SZ"),
        segment_runs=segment_runs(DynamoRunHistory(settings), [d.name for d in all_segments(REPO_ROOT / "segments")]),
        quarantine=lambda window: quarantine_counts(fs, root, window),
        campaigns=load_campaigns(REPO_ROOT / "campaigns"))
    return {**report.meta, "dashboard": write_report(report, fs, root)}


def latest_dashboard(settings: Settings) -> bytes | None:
    """The latest run's dashboard HTML, or None before the first run."""
    from cdp.adapters.lake import bucket_filesystem
    from cdp.jobs.report_job import read_latest, read_object

    fs = bucket_filesystem(settings)
    latest = read_latest(fs, settings.lake_bucket)
    return read_object(fs, settings.lake_bucket, f"{latest['prefix']}/dashboard.html") if latest else None


def _latest_table(settings: Settings, name: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    from cdp.adapters.lake import bucket_filesystem
    from cdp.jobs.report_job import read_latest, read_object

    fs = bucket_filesystem(settings)
    latest = read_latest(fs, settings.lake_bucket)
    if latest is None:
        return None
    meta = json.loads(read_object(fs, settings.lake_bucket, f"{latest['prefix']}/meta.json"))
    return meta, json.loads(read_object(fs, settings.lake_bucket, f"{latest['prefix']}/{name}.json"))


def format_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    if not rows:
        return "(no rows in this range)"
    cells = [[("" if r.get(c) is None else f"{r[c]:,}" if isinstance(r.get(c), int) else str(r[c])) for c in columns]
             for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(row, widths, strict=True)))
              for row in cells]
    return "\n".join(lines)


def _settings() -> Settings | None:
    settings = Settings.from_env()
    if not settings.lake_bucket:
        print("cdp: no stack: run `cdp dev` in this folder, or set the stack's environment", file=sys.stderr)
        return None
    return settings


def cmd_report(args: argparse.Namespace) -> int:
    settings = _settings()
    if settings is None:
        return 2
    if args.action == "run":
        meta = run_reports(settings, first=args.first, last=args.last, by=args.by)
        print(json.dumps({k: meta[k] for k in ("run_id", "from", "to", "granularity", "events", "bytes_scanned",
                                               "seconds", "journey_error", "dashboard")}, indent=2))
        return 0
    if args.action == "show":
        found = _latest_table(settings, args.table)
        if found is None:
            print("cdp: no report yet: run `cdp report run`", file=sys.stderr)
            return 1
        meta, rows = found
        print(f"{args.table}: {meta['from']} -> {meta['to']} by {meta['granularity']}, computed {meta['computed_at']} "
              f"from {meta['events']:,} events")
        if args.table == "journey" and meta.get("journey_error"):
            print(meta["journey_error"])
        print(format_table(rows, TABLES[args.table]))
        return 0
    return open_report(settings)


def open_report(settings: Settings) -> int:
    from cdp.adapters.lake import bucket_filesystem
    from cdp.jobs.report_job import read_latest

    latest = read_latest(bucket_filesystem(settings), settings.lake_bucket)
    if latest is None:
        print("cdp: no report yet: run `cdp report run`", file=sys.stderr)
        return 1
    key = f"{latest['prefix']}/dashboard.html"
    if settings.aws_endpoint_url:  # the local stack: a copy on disk (the emulator is not a web server)
        html = latest_dashboard(settings) or b""
        path = LOCAL_COPY / latest["run_id"] / "dashboard.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(html)
        print(path.resolve().as_uri())
        print("also served by `cdp dev` at GET /v1/reports/latest (admin token)", file=sys.stderr)
        return 0
    from cdp.adapters.aws import aws_client

    url = aws_client(settings, "s3").generate_presigned_url(
        "get_object", Params={"Bucket": settings.lake_bucket, "Key": key}, ExpiresIn=3600)
    print(url)
    return 0


def add_parser(sub: Any) -> None:
    report = sub.add_parser("report", help="run the reports on the lake, show their tables, open the dashboard")
    report.add_argument("action", choices=["run", "show", "open"])
    report.add_argument("table", nargs="?", default="funnel", choices=sorted(TABLES),
                        help="show: which table (default funnel)")
    report.add_argument("--from", dest="first", type=date.fromisoformat, default=None,
                        help="run: first day (default 180 days before --to)")
    report.add_argument("--to", dest="last", type=date.fromisoformat, default=None, help="run: last day (today)")
    report.add_argument("--by", default="week", choices=["day", "week", "month"], help="run: granularity")
    report.set_defaults(func=cmd_report)


def demo_report(pipeline: Any, progress: Any) -> dict[str, Any]:
    """Fire the ReportFunction's schedule on the local stack, keep a copy of its dashboard on disk."""
    progress("running the reports")
    results = pipeline.run_schedules("ReportFunction")
    if not results or not isinstance(results[0], dict) or "run_id" not in results[0]:
        return {"error": str(results)}
    meta = results[0]
    path = LOCAL_COPY / meta["run_id"] / "dashboard.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(latest_dashboard(pipeline.settings) or b"")
    return {k: meta[k] for k in ("run_id", "events", "bytes_scanned", "seconds", "query_seconds", "journey_error")} | {
        "open": str(path.resolve())}
