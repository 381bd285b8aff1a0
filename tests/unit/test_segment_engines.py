"""Compiled segments on DuckDB over a small Parquet lake; the Athena rendering gives the same members."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
import sqlglot
from sqlglot import exp

from cdp.adapters.duckdb import DuckDBEngine
from cdp.errors import QueryFailed
from cdp.lake.parquet import PROFILES_SCHEMA, write_events, write_identity_snapshot
from cdp.segments.catalog import all_segments
from cdp.segments.compiler import compile_segment
from cdp.segments.definition import parse_segment

NOW = datetime(2024, 3, 31, 12, 0, tzinfo=UTC)


def at(days_ago: float) -> str:
    return (NOW - timedelta(days=days_ago)).isoformat().replace("+00:00", "Z")


def track(
    mid: str, event: str, days_ago: float, *, user: str | None = None, anon: str | None = None, **props
):
    return {
        "messageId": mid,
        "type": "track",
        "event": event,
        "userId": user,
        "anonymousId": anon,
        "timestamp": at(days_ago),
        "properties": props,
    }


EVENTS = [
    # p1: two orders in 30 days, one under an anonymous id merged into p1, one delivered twice
    track("m1", "Order Completed", 3, user="u1", total=30, currency="EUR"),
    track("m1", "Order Completed", 3, user="u1", total=30, currency="EUR"),
    track("m2", "Order Completed", 10, anon="a5", total=80, currency="USD"),
    # p2: one order delivered three times; the user id wins over the anonymous id of p3
    track("m3", "Order Completed", 5, user="u2", anon="a3", total=500, currency="EUR"),
    track("m3", "Order Completed", 5, user="u2", anon="a3", total=500, currency="EUR"),
    track("m3", "Order Completed", 5, user="u2", anon="a3", total=500, currency="EUR"),
    # p3: one order in the window, one 40 days ago
    track("m4", "Order Completed", 2, anon="a3", total=20, currency="EUR"),
    track("m5", "Order Completed", 40, anon="a3", total=20, currency="EUR"),
    track("m6", "Product Viewed", 1, anon="a3"),
    # an event of nobody the identity map knows
    track("m7", "Order Completed", 1, user="stranger"),
    track("m8", "Order Completed", 1, user="stranger"),
]
IDENTITY = [
    ("user_id:u1", "p1"),
    ("anonymous_id:a1", "p1"),
    ("anonymous_id:a5", "p1"),
    ("user_id:u2", "p2"),
    ("anonymous_id:a3", "p3"),
    ("user_id:u4", "p4"),
]
PROFILES = [
    {
        "profile_id": "p1",
        "lifecycle_stage": "engaged_customer",
        "traits": {"plan": "pro", "age": 41},
        "computed": {"lifetime_value": 110},
        "consent": {"email": True},
    },
    {
        "profile_id": "p2",
        "lifecycle_stage": "new_customer",
        "traits": {"plan": "free", "age": "29"},
        "computed": {"lifetime_value": 500},
        "consent": {"email": False},
    },
    {"profile_id": "p3", "lifecycle_stage": "prospect", "traits": {"nickname": "bob"}, "computed": {}},
    {"profile_id": "p4", "lifecycle_stage": "lead", "traits": {"plan": "team"}, "computed": {}},
]


def write_profiles(fs: pafs.FileSystem, root: str, profiles: list[dict]) -> None:
    rows = [
        {
            "profile_id": p["profile_id"],
            "lifecycle_stage": p.get("lifecycle_stage"),
            "traits": json.dumps(p.get("traits", {})),
            "computed": json.dumps(p.get("computed", {})),
            "consent": json.dumps(p["consent"]) if "consent" in p else None,
        }
        for p in profiles
    ]
    fs.create_dir(f"{root}/profiles", recursive=True)
    pq.write_table(
        pa.Table.from_pylist(rows, schema=PROFILES_SCHEMA), f"{root}/profiles/p.parquet", filesystem=fs
    )


@pytest.fixture
def lake(tmp_path: Path) -> DuckDBEngine:
    fs = pafs.LocalFileSystem()
    root = str(tmp_path)
    write_events(EVENTS[:6], fs, root, "batch-1")
    write_events(EVENTS[6:], fs, root, "batch-2")
    write_identity_snapshot(IDENTITY, fs, root)
    write_profiles(fs, root, PROFILES)
    return DuckDBEngine(fs, root)


def members(engine: DuckDBEngine, yaml_text: str, dialect: str = "duckdb") -> set[str]:
    defn = parse_segment(yaml_text, "t.yaml")
    sql = compile_segment(defn, now=NOW, dialect=dialect)
    if dialect != "duckdb":
        sql = sqlglot.transpile(sql, read=dialect, write="duckdb")[0]
    return {row["profile_id"] for row in engine.run(sql).rows}


REPEAT_BUYERS = "name: rb\ncondition: {event: Order Completed, within_days: 30, min_count: 2}\n"

CASES = {
    "repeat buyers": (REPEAT_BUYERS, {"p1"}),
    "ordered at all in 30 days": (
        "name: x\ncondition: {event: Order Completed, within_days: 30}\n",
        {"p1", "p2", "p3"},
    ),
    "ordered in EUR": (
        "name: x\ncondition: {event: Order Completed, within_days: 30, where: [{property: currency, eq: EUR}]}\n",
        {"p1", "p2", "p3"},
    ),
    "two orders in USD": (
        "name: x\ncondition: {event: Order Completed, within_days: 60, min_count: 1, "
        "where: [{property: currency, eq: USD}]}\n",
        {"p1"},
    ),
    "spent 120 or more (a redelivered order is summed once)": (
        "name: x\ncondition: {event: Order Completed, within_days: 30, sum: {property: total, gte: 120}}\n",
        {"p2"},
    ),
    "spent under 100, none counts as zero": (
        "name: x\ncondition: {event: Order Completed, within_days: 30, sum: {property: total, lt: 100}}\n",
        {"p3", "p4"},
    ),
    "first order within 7 days (over 60)": (
        "name: x\ncondition: {event: Order Completed, within_days: 60, first: {within_days: 7}}\n",
        {"p2"},
    ),
    "last order older than 4 days": (
        "name: x\ncondition: {event: Order Completed, within_days: 60, last: {older_than_days: 4}}\n",
        {"p2"},
    ),
    "no order in 30 days": (
        "name: x\ncondition: {not: {event: Order Completed, within_days: 30}}\n",
        {"p4"},
    ),
    "at most one order": (
        "name: x\ncondition: {event: Order Completed, within_days: 30, max_count: 1}\n",
        {"p2", "p3", "p4"},
    ),
    "plan is pro or team": ("name: x\ncondition: {trait: plan, in: [pro, team]}\n", {"p1", "p4"}),
    "plan is not pro (missing plan is not 'not pro')": (
        "name: x\ncondition: {trait: plan, ne: pro}\n",
        {"p2", "p4"},
    ),
    "not on the pro plan (missing plan included)": (
        "name: x\ncondition: {not: {trait: plan, eq: pro}}\n",
        {"p2", "p3", "p4"},
    ),
    "age over 30, numbers written as text compare as numbers": (
        "name: x\ncondition: {trait: age, gt: 30}\n",
        {"p1"},
    ),
    "age 20 to 30": ("name: x\ncondition: {trait: age, gte: 20, lt: 30}\n", {"p2"}),
    "has a nickname": ("name: x\ncondition: {trait: nickname, exists: true}\n", {"p3"}),
    "nickname contains o": ("name: x\ncondition: {trait: nickname, contains: o}\n", {"p3"}),
    "lifetime value 100+": ("name: x\ncondition: {computed: lifetime_value, gte: 100}\n", {"p1", "p2"}),
    "customers": ("name: x\ncondition: {lifecycle: [new_customer, engaged_customer]}\n", {"p1", "p2"}),
    "consents to email": ("name: x\ncondition: {consent: email}\n", {"p1"}),
    "no consent to email": ("name: x\ncondition: {not: {consent: email}}\n", {"p2", "p3", "p4"}),
    "pro or ordered with no consent": (
        "name: x\ncondition:\n  any:\n    - {trait: plan, eq: pro}\n"
        "    - all: [{event: Order Completed, within_days: 30}, {not: {consent: email}}]\n",
        {"p1", "p2", "p3"},
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_duckdb_rendering_finds_the_expected_members(lake: DuckDBEngine, case: str):
    text, expected = CASES[case]

    assert members(lake, text) == expected


@pytest.mark.parametrize("case", sorted(CASES))
def test_athena_rendering_run_on_duckdb_finds_the_same_members(lake: DuckDBEngine, case: str):
    text, expected = CASES[case]

    assert members(lake, text, dialect="trino") == members(lake, text) == expected


@pytest.mark.parametrize("case", sorted(CASES))
def test_athena_rendering_parses_in_the_trino_dialect(case: str):
    sql = compile_segment(parse_segment(CASES[case][0]), now=NOW, dialect="athena")

    tree = sqlglot.parse_one(sql, read="trino")

    assert isinstance(tree, exp.Select)


def test_a_message_delivered_twice_counts_once(lake: DuckDBEngine):
    found = members(lake, REPEAT_BUYERS)

    assert "p2" not in found


def test_the_user_id_wins_over_the_anonymous_id(lake: DuckDBEngine):
    found = members(
        lake,
        "name: x\ncondition: {event: Order Completed, within_days: 30, sum: {property: total, gte: 500}}\n",
    )

    assert found == {"p2"}


def test_events_outside_the_window_do_not_count(lake: DuckDBEngine):
    found = members(lake, "name: x\ncondition: {event: Order Completed, within_days: 60, min_count: 2}\n")

    assert found == {"p1", "p3"}


def test_partitions_outside_the_window_are_never_read(tmp_path: Path):
    fs = pafs.LocalFileSystem()
    root = str(tmp_path)
    write_events(EVENTS, fs, root, "batch")
    write_identity_snapshot(IDENTITY, fs, root)
    old = tmp_path / "events" / "dt=2023-01-01"
    old.mkdir(parents=True)
    (old / "corrupt.parquet").write_bytes(b"this is not parquet")
    engine = DuckDBEngine(fs, root)

    found = members(engine, REPEAT_BUYERS)

    assert found == {"p1"}


def test_a_corrupt_partition_inside_the_window_fails_the_query(tmp_path: Path):
    fs = pafs.LocalFileSystem()
    root = str(tmp_path)
    write_events(EVENTS, fs, root, "batch")
    day = tmp_path / "events" / f"dt={(NOW - timedelta(days=1)):%Y-%m-%d}"
    (day / "corrupt.parquet").write_bytes(b"this is not parquet")
    engine = DuckDBEngine(fs, root)

    with pytest.raises(QueryFailed):
        members(engine, REPEAT_BUYERS)


def events_columns(sql: str, dialect: str) -> set[str]:
    tree = sqlglot.parse_one(sql, read=dialect)
    return {c.name for c in tree.find_all(exp.Column) if c.table == "e"}


@pytest.mark.parametrize("dialect", ["duckdb", "trino"])
def test_a_count_reads_only_the_columns_it_needs(dialect: str):
    sql = compile_segment(parse_segment(REPEAT_BUYERS), now=NOW, dialect=dialect)

    assert events_columns(sql, dialect) == {
        "dt",
        "event",
        "timestamp",
        "message_id",
        "user_id",
        "anonymous_id",
    }


def test_properties_are_read_only_when_filtered_or_summed():
    text = "name: x\ncondition: {event: A, within_days: 3, where: [{property: c, eq: EUR}]}\n"

    sql = compile_segment(parse_segment(text), now=NOW, dialect="trino")

    assert "properties" in events_columns(sql, "trino")


def test_the_query_filters_dt_to_the_window_as_strings():
    sql = compile_segment(parse_segment(REPEAT_BUYERS), now=NOW, dialect="trino")

    assert "\"e\".\"dt\" BETWEEN '2024-03-01' AND '2024-03-31'" in sql


def test_the_bytes_read_are_reported_and_below_the_lake_size(lake: DuckDBEngine):
    sql = compile_segment(parse_segment(REPEAT_BUYERS), now=NOW, dialect="duckdb")

    result = lake.run(sql)

    assert result.bytes_scanned > 0


def test_a_narrower_window_reads_fewer_bytes(lake: DuckDBEngine):
    wide = compile_segment(parse_segment(REPEAT_BUYERS.replace("30", "60")), now=NOW, dialect="duckdb")
    narrow = compile_segment(parse_segment(REPEAT_BUYERS.replace("30", "1")), now=NOW, dialect="duckdb")

    assert lake.run(narrow).bytes_scanned < lake.run(wide).bytes_scanned


def test_a_lake_with_only_events_has_empty_identity_and_profiles(tmp_path: Path):
    fs = pafs.LocalFileSystem()
    write_events(EVENTS, fs, str(tmp_path), "batch")
    engine = DuckDBEngine(fs, str(tmp_path))

    assert members(engine, REPEAT_BUYERS) == set()
    assert members(engine, "name: x\ncondition: {lifecycle: lead}\n") == set()


def test_an_empty_lake_answers_with_no_members(tmp_path: Path):
    engine = DuckDBEngine(pafs.LocalFileSystem(), str(tmp_path))

    assert members(engine, REPEAT_BUYERS) == set()


def test_profiles_written_without_consent_read_as_no_consent(tmp_path: Path):
    fs = pafs.LocalFileSystem()
    root = str(tmp_path)
    from cdp.identity.computed import Lifecycle
    from cdp.identity.profile import Profile
    from cdp.lake.parquet import write_profiles_snapshot

    write_profiles_snapshot([Profile("p9", lifecycle=Lifecycle(stage="lead")).view()], fs, root)
    engine = DuckDBEngine(fs, root)

    assert members(engine, "name: x\ncondition: {not: {consent: email}}\n") == {"p9"}


def test_invalid_sql_raises_query_failed(lake: DuckDBEngine):
    with pytest.raises(QueryFailed):
        lake.run("SELECT nope FROM nowhere")


SHIPPED = all_segments(Path(__file__).resolve().parents[2] / "segments")


@pytest.mark.parametrize("defn", SHIPPED, ids=[d.name for d in SHIPPED])
def test_every_shipped_segment_runs_on_duckdb_and_parses_as_trino(lake: DuckDBEngine, defn):
    trino = compile_segment(defn, now=NOW, dialect="athena")

    duckdb_rows = lake.run(compile_segment(defn, now=NOW, dialect="duckdb")).rows
    round_trip = lake.run(sqlglot.transpile(trino, read="trino", write="duckdb")[0]).rows

    assert sorted(r["profile_id"] for r in duckdb_rows) == sorted(r["profile_id"] for r in round_trip)


def test_a_file_written_between_two_queries_is_read_by_the_second(tmp_path: Path):
    # Given an engine that has already queried a lake of one batch
    fs = pafs.LocalFileSystem()
    write_events(EVENTS[:6], fs, str(tmp_path), "batch-1")
    engine = DuckDBEngine(fs, str(tmp_path))
    first = engine.run("SELECT count(*) AS n FROM events")
    # When another batch is archived and the same query runs again
    write_events(EVENTS[6:], fs, str(tmp_path), "batch-2")
    second = engine.run("SELECT count(*) AS n FROM events")
    # Then it counts both batches, and the bytes scanned stay reported for each run
    assert first.rows[0]["n"] == 6 and second.rows[0]["n"] == len(EVENTS)
    again = engine.run("SELECT count(*) AS n FROM events")
    assert again.bytes_scanned == second.bytes_scanned > first.bytes_scanned


def test_a_query_duckdb_cannot_bind_fails_for_good(tmp_path: Path):
    fs = pafs.LocalFileSystem()
    write_events(EVENTS, fs, str(tmp_path), "batch")

    with pytest.raises(QueryFailed) as caught:
        DuckDBEngine(fs, str(tmp_path)).run("SELECT json_extract_scalar(properties, '$.x') FROM events")

    assert caught.value.retryable is False
