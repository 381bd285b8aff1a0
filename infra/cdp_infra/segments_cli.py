"""``cdp segments validate|list|preview|run|sql|compact``.

Definitions are read from ``--dir`` (default ``segments/``) plus the built-in lifecycle segments.
``preview`` and ``run`` query the stack named by the functions' environment (``QUERY_ENGINE``,
``LAKE_BUCKET``, ``MEMBERSHIP_TABLE``, ``ACTIVATION_QUEUE_URL``; ``AWS_ENDPOINT_URL`` for a local
emulator), or, with ``--lake DIR``, a lake in a local directory through DuckDB.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from cdp.times import parse_timestamp

DEFAULT_DIR = "segments"


def add_parser(sub: Any) -> None:
    segments = sub.add_parser("segments", help="segment definitions: validate, list, preview, run")
    seg_sub = segments.add_subparsers(dest="segments_command", required=True)

    validate = seg_sub.add_parser("validate", help="check every definition (file, line and reason on error)")
    _dir(validate)
    validate.set_defaults(func=cmd_validate)

    listing = seg_sub.add_parser("list", help="list the segments: name, kind, schedule, description")
    _dir(listing)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_list)

    preview = seg_sub.add_parser("preview", help="count, sample and bytes scanned, without storing anything")
    _dir(preview)
    _query(preview)
    preview.add_argument("--sample", type=int, default=10, help="how many member ids to show")
    preview.add_argument("--json", action="store_true")
    preview.set_defaults(func=cmd_preview)

    run = seg_sub.add_parser("run", help="run a segment now: store membership, hand changes to activation")
    _dir(run)
    _query(run)
    run.add_argument("--run-id", help="idempotency key of the run (default: cli-<now>)")
    run.add_argument("--json", action="store_true")
    run.set_defaults(func=cmd_run)

    sql = seg_sub.add_parser("sql", help="print the SQL a segment compiles to")
    _dir(sql)
    sql.add_argument("name")
    sql.add_argument("--dialect", default="trino", choices=["trino", "athena", "duckdb"])
    sql.add_argument("--now", help="ISO time the windows end at (default: now)")
    sql.set_defaults(func=cmd_sql)

    compact = seg_sub.add_parser("compact", help="compact one day of the lake's events into few files")
    compact.add_argument("dt", help="the partition day, YYYY-MM-DD")
    compact.add_argument("--lake", help="a lake in a local directory (default: the stack's bucket)")
    compact.set_defaults(func=cmd_compact)


def _dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", default=DEFAULT_DIR, help="folder of YAML definitions (default: segments/)")


def _query(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name")
    parser.add_argument("--lake", help="query a lake in a local directory with DuckDB")
    parser.add_argument("--now", help="ISO time the windows end at (default: now)")


def _now(args: argparse.Namespace) -> datetime:
    if getattr(args, "now", None):
        return parse_timestamp(args.now)
    return datetime.now(UTC)


def _catalog(args: argparse.Namespace) -> list[Any]:
    from cdp.segments.catalog import all_segments

    return all_segments(args.dir)


def _segment(args: argparse.Namespace) -> Any:
    from cdp.segments.catalog import find_segment

    return find_segment(_catalog(args), args.name)


def _engine(args: argparse.Namespace) -> Any:
    if args.lake:
        import pyarrow.fs as pafs

        from cdp.adapters.duckdb import DuckDBEngine

        return DuckDBEngine(pafs.LocalFileSystem(), str(args.lake))
    from cdp.adapters.engines import query_engine
    from cdp.settings import Settings

    return query_engine(Settings.from_env())


def _fail(exc: Exception) -> int:
    print(f"error: {exc}", file=sys.stderr)
    return 1


def cmd_validate(args: argparse.Namespace) -> int:
    from cdp.errors import InvalidSegment

    try:
        defns = _catalog(args)
    except InvalidSegment as exc:
        return _fail(exc)
    print(
        f"{len(defns)} segments valid ({sum(1 for d in defns if d.is_realtime)} also evaluated in real time)"
    )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from cdp.errors import InvalidSegment

    try:
        defns = _catalog(args)
    except InvalidSegment as exc:
        return _fail(exc)
    rows = [
        {
            "name": d.name,
            "kind": "real-time + scheduled" if d.is_realtime else "scheduled",
            "schedule": d.schedule or "every run",
            "description": d.description,
            "source": d.source,
        }
        for d in defns
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        print(f"{r['name']:<{width}}  {r['kind']:<21}  {r['schedule']:<18}  {r['description']}")
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    from cdp.errors import CdpError
    from cdp.segments.run import preview_segment

    try:
        preview = preview_segment(_segment(args), _engine(args), _now(args), sample_size=args.sample)
    except CdpError as exc:
        return _fail(exc)
    if args.json:
        print(json.dumps({k: v for k, v in asdict(preview).items() if k != "sql"}, indent=2))
        return 0
    print(f"{preview.segment}: {preview.count:,} members; scanned {_bytes(preview.bytes_scanned)}")
    for profile_id in preview.sample:
        print(f"  {profile_id}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from cdp.adapters.membership import DynamoMembershipStore
    from cdp.adapters.sqs import SqsChangePublisher
    from cdp.errors import CdpError
    from cdp.segments.run import run_segment
    from cdp.settings import Settings

    settings = Settings.from_env()
    now = _now(args)
    run_id = args.run_id or f"cli-{now:%Y%m%dT%H%M%SZ}"
    try:
        report = run_segment(
            _segment(args),
            engine=_engine(args),
            membership=DynamoMembershipStore(settings),
            publish=SqsChangePublisher(settings),
            run_id=run_id,
            now=now,
        )
    except CdpError as exc:
        return _fail(exc)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    replay = " (already completed: nothing redone)" if report.replayed else ""
    print(
        f"{report.segment} run {report.run_id}{replay}: {report.members:,} members, "
        f"+{report.entered:,} entered, -{report.exited:,} exited; scanned {_bytes(report.bytes_scanned)}"
    )
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    from cdp.errors import CdpError
    from cdp.segments.compiler import compile_segment

    try:
        print(compile_segment(_segment(args), now=_now(args), dialect=args.dialect))
    except CdpError as exc:
        return _fail(exc)
    return 0


def cmd_compact(args: argparse.Namespace) -> int:
    from cdp.lake.compaction import compact_partition

    if args.lake:
        import pyarrow.fs as pafs

        fs, root = pafs.LocalFileSystem(), str(args.lake)
    else:
        from cdp.adapters.lake import lake_filesystem, lake_root
        from cdp.settings import Settings

        settings = Settings.from_env()
        fs, root = lake_filesystem(settings), lake_root(settings)
    report = compact_partition(fs, root, args.dt)
    print(
        f"dt={report.dt}: {report.files_before} files -> {report.files_after}, {report.rows_after:,} rows "
        f"({report.duplicates_removed:,} duplicates removed), {_bytes(report.bytes_before)} -> "
        f"{_bytes(report.bytes_after)}"
    )
    return 0


def _bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return f"{n} B"
