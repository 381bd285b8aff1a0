"""Report benchmark: the report job's queries on a large Parquet lake, with DuckDB.

Generates the same lake as the segment benchmark (one file per day, as after compaction: by default
10 million events over a year from 200,000 people), adds a profile snapshot with a lifecycle history
per person, then runs the report job's ``compute_report`` (every query and the folding into tables)
for two windows and prints, for each, the time, the bytes the queries scanned (what Athena would bill)
and each query's time:

* the last 13 weeks by week (what the scheduled job computes);
* the whole year by month.

    python bench/bench_report.py                    # 10 million events, 365 days
    python bench/bench_report.py --events 1000000 --days 90 --users 20000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_segments import NOW, _ints, _mod, _strings, _uniform, generate_lake  # noqa: E402

from cdp.adapters.duckdb import DuckDBEngine  # noqa: E402
from cdp.jobs.report_job import compute_report  # noqa: E402
from cdp.lake.parquet import PROFILES_SCHEMA  # noqa: E402
from cdp.reports import ReportRange  # noqa: E402
from cdp.reports.journey import parse_journey  # noqa: E402

JOURNEY = """
stages:
  awareness:
    - event: Page Viewed
  attraction:
    - event: Product Viewed
  ask:
    - event: Added to Cart
  action:
    - event: Order Completed
  advocacy:
    - event: Signed Up
"""

# Each person's lifecycle: a first stage when first seen, and for some a second and third change.
PATHS = [
    ("new_visitor",),
    ("new_visitor", "returning_visitor"),
    ("new_visitor", "lead", "new_customer"),
    ("new_visitor", "new_customer", "engaged_customer"),
    ("new_visitor", "new_customer", "churned"),
]


def write_profiles(root: Path, *, users: int, days: int, seed: int) -> int:
    """profiles/profiles.parquet: one row per person, its stage and a JSON lifecycle history."""
    ids = pa.array(range(users), pa.int64())
    first_day = int((NOW - timedelta(days=days)).timestamp() * 1000)
    span = days * 86_400_000
    first = pc.add(_ints(_uniform(users, seed + 11), 0, span // 2), first_day)
    step = _ints(_uniform(users, seed + 12), 86_400_000, span // 4)
    path = _mod(_ints(_uniform(users, seed + 13), 0, 1_000_003), len(PATHS))

    def at(offset: int) -> pa.Array:
        return pc.add(first, pc.multiply(step, offset)).cast(pa.timestamp("ms", tz="UTC"))

    def iso(values: pa.Array) -> pa.Array:
        return pc.strftime(values, format="%Y-%m-%dT%H:%M:%S.000Z")

    stage = pa.array([PATHS[i][-1] for i in path.to_pylist()], pa.string())
    history = []
    for p, t0, t1, t2 in zip(path.to_pylist(), iso(at(0)).to_pylist(), iso(at(1)).to_pylist(),
                             iso(at(2)).to_pylist(), strict=True):
        history.append(json.dumps([{"stage": s, "at": t} for s, t in zip(PATHS[p], (t0, t1, t2), strict=False)]))
    known = pc.equal(_mod(ids, 2), 0)
    table = pa.table({
        "profile_id": _strings("p", ids),
        "email": pc.if_else(known, pc.binary_join_element_wise(_strings("u", ids), "@example.com", ""),
                            pa.scalar(None, pa.string())),
        "first_seen": at(0),
        "last_seen": at(2),
        "event_count": pa.repeat(pa.scalar(0, pa.int64()), users),
        "lifecycle_stage": stage,
        "traits": pa.repeat("{}", users),
        "computed": pa.repeat("{}", users),
        "consent": pa.repeat("{}", users),
        "lifecycle_history": pa.array(history, pa.string()),
    }).cast(PROFILES_SCHEMA)
    (root / "profiles").mkdir(parents=True, exist_ok=True)
    pq.write_table(table, f"{root}/profiles/profiles.parquet", compression="zstd")
    return table.num_rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args(argv)

    journey = parse_journey(JOURNEY, "bench-journey.yaml")
    figures: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="cdp-bench-report-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        sizes = generate_lake(root, events=args.events, days=args.days, users=args.users, seed=args.seed)
        profiles = write_profiles(root, users=args.users, days=args.days, seed=args.seed)
        engine = DuckDBEngine(pafs.LocalFileSystem(), str(root))
        lake_bytes = sum(engine.lake_bytes(folder) for folder in ("events", "identity", "profiles"))
        print(f"lake: {sizes['events']:,} events over {args.days} days, {profiles:,} profiles, "
              f"{lake_bytes / 1e6:,.1f} MB of Parquet (generated in {time.perf_counter() - started:.1f}s)")
        last = NOW.date() - timedelta(days=1)
        windows = {
            "13 weeks by week": ReportRange(last - timedelta(weeks=13), last, "week"),
            f"{args.days} days by month": ReportRange(last - timedelta(days=args.days - 1), last, "month"),
        }
        for label, window in windows.items():
            report = compute_report(engine=engine, window=window, journey=journey, now=NOW, run_id="bench")
            meta = report.meta
            figures[label] = {key: meta[key] for key in ("events", "profiles", "queries", "query_seconds",
                                                         "bytes_scanned", "seconds")}
            print(f"{label}: {meta['seconds']:.1f}s for {meta['events']:,} events and {meta['profiles']:,} "
                  f"profiles; {meta['queries']} queries read {meta['bytes_scanned'] / 1e6:,.1f} MB "
                  f"({meta['bytes_scanned'] / lake_bytes:.2f}x the lake, summed over queries); query seconds "
                  f"{meta['query_seconds']}")
        engine.close()
    if args.json:
        print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
