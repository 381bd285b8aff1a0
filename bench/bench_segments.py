"""Segment benchmark: a year of events in a Parquet lake, queried with DuckDB.

Generates (vectorised with pyarrow.compute, one file per day as after compaction) a lake of --events events over --days
days in a temporary directory, then prints for a 30-day behaviour segment:

* the compiled query's time next to a hand-written query for the same members (aim <= 1.3x);
* the share of the lake's bytes the compiled query reads (aim <= 15 %).

    python bench/bench_segments.py                 # 10 million events, 365 days
    python bench/bench_segments.py --events 1000000 --days 90
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from cdp.adapters.duckdb import DuckDBEngine
from cdp.lake.parquet import EVENTS_SCHEMA, IDENTITY_SCHEMA
from cdp.segments.compiler import compile_segment
from cdp.segments.definition import parse_segment

NOW = datetime(2025, 1, 1, tzinfo=UTC)
EVENT_NAMES = ["Page Viewed", "Product Viewed", "Added to Cart", "Order Completed", "Signed Up"]
EVENT_WEIGHTS = [0.55, 0.25, 0.1, 0.08, 0.02]

SEGMENTS = {
    "repeat buyers (count, 30 days)": (
        "name: repeat-buyers\ncondition: {event: Order Completed, within_days: 30, min_count: 2}\n",
        """
        WITH o AS (
          SELECT user_id, anonymous_id, message_id FROM events
          WHERE dt BETWEEN '{start_day}' AND '{end_day}' AND event = 'Order Completed'
            AND "timestamp" > CAST('{start}' AS TIMESTAMP) AND "timestamp" <= CAST('{end}' AS TIMESTAMP)
        ), per_profile AS (
          SELECT COALESCE(iu.profile_id, ia.profile_id) AS profile_id, COUNT(DISTINCT o.message_id) AS n
          FROM o
          LEFT JOIN identity iu ON iu.identifier = 'user_id:' || o.user_id
          LEFT JOIN identity ia ON ia.identifier = 'anonymous_id:' || o.anonymous_id
          GROUP BY 1
        )
        SELECT profile_id FROM per_profile WHERE profile_id IS NOT NULL AND n >= 2
        """,
    ),
    "big spenders (sum of a property, 30 days)": (
        "name: big-spenders\ncondition: {event: Order Completed, within_days: 30, "
        "sum: {property: total, gte: 300}}\n",
        """
        WITH o AS (
          SELECT DISTINCT user_id, anonymous_id, message_id,
                 TRY_CAST(properties ->> '$.total' AS DOUBLE) AS total FROM events
          WHERE dt BETWEEN '{start_day}' AND '{end_day}' AND event = 'Order Completed'
            AND "timestamp" > CAST('{start}' AS TIMESTAMP) AND "timestamp" <= CAST('{end}' AS TIMESTAMP)
        ), per_profile AS (
          SELECT COALESCE(iu.profile_id, ia.profile_id) AS profile_id, SUM(o.total) AS spent
          FROM o
          LEFT JOIN identity iu ON iu.identifier = 'user_id:' || o.user_id
          LEFT JOIN identity ia ON ia.identifier = 'anonymous_id:' || o.anonymous_id
          GROUP BY 1
        )
        SELECT profile_id FROM per_profile WHERE profile_id IS NOT NULL AND spent >= 300
        """,
    ),
}


def _strings(prefix: str, numbers: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pc.cast(numbers, pa.string()), "")


def _uniform(n: int, seed: int) -> pa.Array:
    return pc.random(n, initializer=seed)


def _ints(uniform: pa.Array, low: int, high: int) -> pa.Array:
    """Integers in [low, high) from uniform doubles in [0, 1)."""
    return pc.add(pc.cast(pc.floor(pc.multiply(uniform, high - low)), pa.int64()), low)


def _mod(values: pa.Array, divisor: int) -> pa.Array:
    return pc.subtract(values, pc.multiply(pc.divide(values, divisor), divisor))


def generate_lake(root: Path, *, events: int, days: int, users: int, seed: int) -> dict[str, int]:
    """Write events/dt=.../part-0.parquet (one file per day) and the identity snapshot (pyarrow only)."""
    fs = pafs.LocalFileSystem()
    names = pa.array(EVENT_NAMES)
    thresholds = [sum(EVENT_WEIGHTS[: i + 1]) for i in range(len(EVENT_WEIGHTS) - 1)]
    first_day = (NOW - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
    base_id = 0
    for d in range(days):
        n = events // days + (1 if d < events % days else 0)
        day = first_day + timedelta(days=d)
        draw = [_uniform(n, seed * 1_000_003 + d * 7 + k) for k in range(5)]
        user = _ints(draw[0], 0, users)
        known = pc.less(draw[1], 0.7)  # 70 % of events carry the user id, the rest only an anonymous id
        kind = pc.cast(pc.greater_equal(draw[2], thresholds[0]), pa.int64())
        for t in thresholds[1:]:
            kind = pc.add(kind, pc.cast(pc.greater_equal(draw[2], t), pa.int64()))
        millis = _ints(draw[3], 0, 86_400_000)
        millis = pc.take(millis, pc.sort_indices(millis))
        ts = pc.add(millis, int(day.timestamp() * 1000)).cast(pa.timestamp("ms", tz="UTC"))
        totals = pc.cast(_ints(draw[4], 5, 400), pa.string())
        properties = pc.if_else(
            pc.equal(kind, 3),
            pc.binary_join_element_wise('{"currency":"EUR","total":', totals, "}", ""),
            pc.binary_join_element_wise('{"path":"/p/', totals, '"}', ""),
        )
        context = pc.binary_join_element_wise(
            '{"ip":"10.0.',
            pc.cast(_mod(user, 250), pa.string()),
            '","library":{"name":"analytics-python","version":"2.3.2"},'
            '"userAgent":"Mozilla/5.0 (X11; Linux x86_64)"}',
            "",
        )
        columns = {
            "message_id": _strings("m", pa.array(range(base_id, base_id + n), pa.int64())),
            "type": pa.repeat("track", n),
            "event": pc.take(names, kind),
            "name": pa.nulls(n, pa.string()),
            "user_id": pc.if_else(known, _strings("u", user), pa.scalar(None, pa.string())),
            "anonymous_id": _strings("a", user),
            "group_id": pa.nulls(n, pa.string()),
            "previous_id": pa.nulls(n, pa.string()),
            "email": pa.nulls(n, pa.string()),
            "timestamp": ts,
            "received_at": ts,
            "source_id": pa.repeat("src-web", n),
            "properties": properties,
            "traits": pa.nulls(n, pa.string()),
            "context": context,
        }
        base_id += n
        table = pa.table(columns).cast(EVENTS_SCHEMA)
        path = f"{root}/events/dt={day:%Y-%m-%d}/part-0.parquet"
        fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        pq.write_table(table, path, filesystem=fs, compression="zstd", row_group_size=1_000_000)

    # identity: every user id, and the anonymous ids of two users in three (the others are unknown)
    ids = pa.array(range(users), pa.int64())
    anon_known = ids.filter(pc.not_equal(_mod(ids, 3), 0))
    identity = pa.table(
        {
            "identifier": pa.concat_arrays(
                [_strings("user_id:u", ids), _strings("anonymous_id:a", anon_known)]
            ),
            "profile_id": pa.concat_arrays([_strings("p", ids), _strings("p", anon_known)]),
        }
    ).cast(IDENTITY_SCHEMA)
    (root / "identity").mkdir(parents=True, exist_ok=True)
    pq.write_table(identity, f"{root}/identity/identity.parquet", compression="zstd")
    return {"events": base_id, "identities": identity.num_rows}


def timed(engine: DuckDBEngine, sql: str, repeat: int) -> tuple[float, set[str]]:
    engine.run(sql)  # warm the OS cache and DuckDB once
    times = []
    members: set[str] = set()
    for _ in range(repeat):
        started = time.perf_counter()
        rows = engine.run(sql).rows
        times.append(time.perf_counter() - started)
        members = {r["profile_id"] for r in rows}
    return statistics.median(times), members


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="cdp-bench-segments-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        sizes = generate_lake(root, events=args.events, days=args.days, users=args.users, seed=args.seed)
        generated_in = time.perf_counter() - started
        timing_engine = DuckDBEngine(pafs.LocalFileSystem(), str(root), count_bytes=False)
        counting_engine = DuckDBEngine(pafs.LocalFileSystem(), str(root))
        lake_bytes = sum(counting_engine.lake_bytes(folder) for folder in ("events", "identity", "profiles"))
        print(
            f"lake: {sizes['events']:,} events over {args.days} days, {sizes['identities']:,} identities, "
            f"{lake_bytes / 1e6:,.1f} MB of Parquet (generated in {generated_in:.1f}s)"
        )
        figures: dict[str, dict[str, float]] = {}
        end = NOW
        start = NOW - timedelta(days=30)
        for label, (yaml_text, hand_sql) in SEGMENTS.items():
            defn = parse_segment(yaml_text, "bench.yaml")
            compiled = compile_segment(defn, now=NOW, dialect="duckdb")
            hand = hand_sql.format(
                start_day=f"{start:%Y-%m-%d}",
                end_day=f"{end:%Y-%m-%d}",
                start=f"{start:%Y-%m-%d %H:%M:%S}",
                end=f"{end:%Y-%m-%d %H:%M:%S}",
            )
            compiled_s, compiled_members = timed(timing_engine, compiled, args.repeat)
            hand_s, hand_members = timed(timing_engine, hand, args.repeat)
            if compiled_members != hand_members:
                print(f"  !! {label}: compiled and hand-written queries disagree", file=sys.stderr)
                return 1
            scanned = counting_engine.run(compiled).bytes_scanned
            figures[label] = {
                "members": len(compiled_members),
                "compiled_s": compiled_s,
                "hand_written_s": hand_s,
                "ratio": compiled_s / hand_s,
                "bytes_scanned": scanned,
                "share_of_lake": scanned / lake_bytes,
            }
            print(
                f"{label}: {len(compiled_members):,} members; compiled {compiled_s * 1000:,.0f} ms vs "
                f"hand-written {hand_s * 1000:,.0f} ms = {compiled_s / hand_s:.2f}x (aim <= 1.3x); "
                f"read {scanned / 1e6:,.2f} MB = {100 * scanned / lake_bytes:.1f} % of the lake (aim <= 15 %)"
            )
        timing_engine.close()
        counting_engine.close()
        if args.json:
            print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
