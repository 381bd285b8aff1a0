"""``cdp import FILE --mapping M``: a CSV, JSON lines or Parquet file onto the stack's events stream.

The same code as the import function on AWS (cdp.jobs.import_job), run here: rows are validated by
the collector's rules, rejects go to the quarantine, the rest to the stream at ``--rate`` records/s.
It talks to the stack named by the environment (``EVENTS_STREAM``, ``LAKE_BUCKET``), or to the
running ``cdp dev`` stack of this folder.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("import", help="import a CSV, JSON lines or Parquet file (CRM export, offline orders)")
    parser.add_argument("file", type=Path)
    parser.add_argument("--mapping", required=True,
                        help="a mapping file, or the name of one in config/imports/ (e.g. crm-contacts)")
    parser.add_argument("--source", help="the events' sourceId (default: the mapping's source, else its name)")
    parser.add_argument("--rate", type=float, default=None,
                        help="records per second sent to the stream (default 500; 0: no limit)")
    parser.add_argument("--file-id", help="the file's identity in message ids (default: its name); the same "
                                          "rows under the same identity are the same events")
    parser.add_argument("--check", action="store_true", help="validate the mapping and the rows; send nothing")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=cmd_import)


def resolve_mapping_path(value: str) -> Path:
    from .template import REPO_ROOT

    path = Path(value)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    return REPO_ROOT / "config" / "imports" / f"{value}.yaml"


class _Discard:
    """Counts what it is given (``--check``)."""

    def put(self, items: Any) -> None:
        pass


def cmd_import(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from cdp.errors import CdpError
    from cdp.identity.config import load_identity_config
    from cdp.imports.mapping import load_mapping
    from cdp.imports.run import DEFAULT_RATE, Pacer
    from cdp.jobs.import_job import import_file
    from cdp.settings import Settings

    from .template import REPO_ROOT

    try:
        identity = load_identity_config(REPO_ROOT / "config" / "identity.yaml")
        mapping = load_mapping(resolve_mapping_path(args.mapping), identity=identity)
    except CdpError as exc:
        print(f"cdp: {exc.reason}", file=sys.stderr)
        return 2
    if not args.file.is_file():
        print(f"cdp: no such file: {args.file}", file=sys.stderr)
        return 2
    sink: Any
    quarantine: Any
    if args.check:
        sink = quarantine = _Discard()
    else:
        from cdp.adapters.kinesis import KinesisSink
        from cdp.adapters.quarantine import S3Quarantine

        settings = Settings.from_env()
        if not settings.events_stream or not settings.lake_bucket:
            print("cdp: no stack: run `cdp dev` in this folder, or set the stack's environment", file=sys.stderr)
            return 2
        sink, quarantine = KinesisSink(settings), S3Quarantine(settings)
    started = time.monotonic()
    try:
        report = import_file(args.file, mapping=mapping, identity=identity, sink=sink, quarantine=quarantine,
                             now=datetime.now(UTC), source_id=args.source, file_id=args.file_id,
                             pacer=Pacer(None if args.check else (DEFAULT_RATE if args.rate is None else args.rate)))
    except CdpError as exc:
        print(json.dumps({"error": exc.code, "reason": exc.reason, **exc.details}, default=str), file=sys.stderr)
        return 1
    elapsed = time.monotonic() - started
    summary = {**report.to_dict(), "seconds": round(elapsed, 2),
               "rows_per_second": round(report.rows_read / elapsed, 1) if elapsed > 0 else None,
               "checked_only": bool(args.check)}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        verb = "checked" if args.check else "imported"
        print(f"{verb} {report.file} with mapping {report.mapping} (source {report.source_id}): "
              f"{report.rows_read} rows read, {report.accepted} accepted, {report.rejected} rejected, "
              f"{report.profiles_touched} profiles touched, {summary['rows_per_second']} rows/s")
        for reason, count in report.reasons.most_common():
            print(f"  {count:>6}  {reason}")
        if report.rejected and not args.check:
            print(f"rejected rows are in the quarantine: cdp quarantine list --source {report.source_id}")
    return 0
