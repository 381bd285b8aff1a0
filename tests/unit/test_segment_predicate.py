"""evaluate_profile: the Python predicate agrees with the compiled SQL on the same profiles."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdp.adapters.duckdb import DuckDBEngine
from cdp.errors import InvalidSegment
from cdp.lake.parquet import PROFILES_SCHEMA
from cdp.segments.catalog import lifecycle_segments
from cdp.segments.compiler import compile_segment
from cdp.segments.definition import LIFECYCLE_STAGES, parse_segment
from cdp.segments.predicate import evaluate_profile

NOW = datetime(2024, 3, 31, tzinfo=UTC)

DEFINITIONS = [
    parse_segment(text)
    for text in (
        "name: pro\ncondition: {trait: plan, eq: pro}\n",
        "name: not-pro\ncondition: {not: {trait: plan, eq: pro}}\n",
        "name: plan-ne\ncondition: {trait: plan, ne: pro}\n",
        "name: plans\ncondition: {trait: plan, in: [pro, team]}\n",
        "name: plans-not\ncondition: {trait: plan, not_in: [pro, team]}\n",
        "name: three\ncondition: {trait: plan, eq: 3}\n",
        "name: flag\ncondition: {trait: plan, eq: true}\n",
        "name: adult\ncondition: {trait: age, gte: 18}\n",
        "name: band\ncondition: {trait: age, gt: 20, lte: 40.5}\n",
        "name: ages\ncondition: {trait: age, in: [18, 21]}\n",
        "name: ages-not\ncondition: {trait: age, not_in: [18, 21]}\n",
        "name: has-age\ncondition: {trait: age, exists: true}\n",
        "name: no-age\ncondition: {trait: age, exists: false}\n",
        "name: city\ncondition: {trait: address.city, contains: ar}\n",
        "name: ltv\ncondition: {computed: lifetime_value, gte: 100}\n",
        "name: buyers\ncondition: {lifecycle: [new_customer, engaged_customer]}\n",
        "name: email-ok\ncondition: {consent: email}\n",
        "name: combo\ncondition:\n  any:\n    - all: [{trait: plan, eq: pro}, {consent: email}]\n"
        "    - not: {any: [{lifecycle: churned}, {computed: lifetime_value, lt: 10}]}\n",
    )
] + lifecycle_segments()

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1000, 1000),
    st.floats(-1e6, 1e6, allow_nan=False).map(lambda f: round(f, 3)),
    st.sampled_from(
        ["pro", "team", "free", "3", "18", " 21 ", "1e2", "abc", "", "Paris", "Arles", "true", "é"]
    ),
)
VALUES = st.one_of(
    SCALARS,
    st.dictionaries(st.sampled_from(["city", "zip"]), SCALARS, max_size=2),
    st.lists(SCALARS, max_size=2),
)
TRAITS = st.fixed_dictionaries(
    {}, optional={"plan": VALUES, "age": VALUES, "address": VALUES, "nickname": SCALARS}
)
PROFILES = st.lists(
    st.fixed_dictionaries(
        {
            "traits": TRAITS,
            "computed_traits": st.fixed_dictionaries({}, optional={"lifetime_value": SCALARS}),
            "lifecycle_stage": st.one_of(st.none(), st.sampled_from(LIFECYCLE_STAGES)),
            "consent": st.one_of(
                st.none(),
                st.fixed_dictionaries({}, optional={"email": st.sampled_from([True, False, "true", 1])}),
            ),
        }
    ),
    min_size=1,
    max_size=25,
)


def write_snapshot(root: str, profiles: list[dict]) -> None:
    rows = [
        {
            "profile_id": f"p{i}",
            "lifecycle_stage": p["lifecycle_stage"],
            # as the lake writer does: json.dumps, Decimals (DynamoDB numbers) as text
            "traits": json.dumps(p["traits"], default=str, sort_keys=True),
            "computed": json.dumps(p["computed_traits"], default=str, sort_keys=True),
            "consent": json.dumps(p["consent"]) if p["consent"] is not None else None,
        }
        for i, p in enumerate(profiles)
    ]
    fs = pafs.LocalFileSystem()
    fs.create_dir(f"{root}/profiles", recursive=True)
    pq.write_table(
        pa.Table.from_pylist(rows, schema=PROFILES_SCHEMA), f"{root}/profiles/p.parquet", filesystem=fs
    )


def all_members_sql() -> str:
    """One query for every definition (one DuckDB round trip per example keeps the test fast)."""
    parts = [
        f"SELECT '{d.name}' AS segment, q.profile_id FROM ({compile_segment(d, now=NOW, dialect='duckdb')}) AS q"
        for d in DEFINITIONS
    ]
    return " UNION ALL ".join(parts)


ALL_MEMBERS_SQL = all_members_sql()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(profiles=PROFILES)
def test_the_predicate_and_the_sql_agree_on_every_profile(profiles: list[dict]):
    with tempfile.TemporaryDirectory() as root:
        write_snapshot(root, profiles)
        engine = DuckDBEngine(pafs.LocalFileSystem(), root, count_bytes=False)
        rows = engine.run(ALL_MEMBERS_SQL).rows
        engine.close()

    for defn in DEFINITIONS:
        sql_members = {r["profile_id"] for r in rows if r["segment"] == defn.name}

        py_members = {f"p{i}" for i, p in enumerate(profiles) if evaluate_profile(defn, p)}

        assert py_members == sql_members, defn.name


def test_a_missing_trait_is_not_a_member_of_ne():
    defn = parse_segment("name: x\ncondition: {trait: plan, ne: pro}\n")

    assert not evaluate_profile(defn, {"traits": {}})


def test_a_missing_trait_is_a_member_of_the_negation():
    defn = parse_segment("name: x\ncondition: {not: {trait: plan, eq: pro}}\n")

    assert evaluate_profile(defn, {"traits": {}})


def test_numbers_written_as_text_compare_as_numbers():
    defn = parse_segment("name: x\ncondition: {trait: age, gte: 18}\n")

    assert evaluate_profile(defn, {"traits": {"age": "21"}})
    assert not evaluate_profile(defn, {"traits": {"age": "twenty"}})


def test_dynamodb_decimals_compare_as_numbers():
    defn = parse_segment("name: x\ncondition: {computed: lifetime_value, gte: 100}\n")

    assert evaluate_profile(defn, {"computed_traits": {"lifetime_value": Decimal("120.5")}})


def test_a_snapshot_row_with_json_text_is_read_like_a_profile():
    defn = parse_segment("name: x\ncondition: {all: [{trait: plan, eq: pro}, {consent: email}]}\n")

    assert evaluate_profile(defn, {"traits": '{"plan": "pro"}', "consent": '{"email": true}'})


def test_an_event_condition_cannot_be_evaluated_on_a_profile():
    defn = parse_segment("name: x\ncondition: {event: A, within_days: 3}\n")

    with pytest.raises(InvalidSegment, match="event conditions"):
        evaluate_profile(defn, {"traits": {}})
