"""Writing and reading the lake's Parquet files with pyarrow (never imported by the collector)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from cdp.identity.profile import ProfileView
from cdp.times import parse_time

from . import (
    EVENT_COLUMNS,
    EVENTS_PREFIX,
    IDENTITY_PREFIX,
    PROFILES_PREFIX,
    event_to_row,
    is_hidden,
    partition_of,
)

_TS = pa.timestamp("ms", tz="UTC")
_ARROW_TYPES = {"string": pa.string(), "json": pa.string(), "timestamp": _TS}

EVENTS_SCHEMA = pa.schema([(name, _ARROW_TYPES[kind]) for name, kind in EVENT_COLUMNS.items()])
IDENTITY_SCHEMA = pa.schema([("identifier", pa.string()), ("profile_id", pa.string())])
PROFILES_SCHEMA = pa.schema([
    ("profile_id", pa.string()), ("email", pa.string()), ("first_seen", _TS), ("last_seen", _TS),
    ("event_count", pa.int64()), ("lifecycle_stage", pa.string()), ("traits", pa.string()),
    ("computed", pa.string()), ("consent", pa.string()),
    # JSON list of {"stage", "at"}, oldest first: the stage changes the profile keeps (reports read it).
    ("lifecycle_history", pa.string()),
])


def _ensure_parent(fs: pafs.FileSystem, path: str) -> None:
    # Object stores have no directories; a local filesystem (tests, laptops) needs them.
    if isinstance(fs, pafs.LocalFileSystem):
        fs.create_dir(path.rsplit("/", 1)[0], recursive=True)


def events_to_tables(events: Iterable[dict[str, Any]]) -> dict[str, pa.Table]:
    """Events grouped by ``dt`` partition, each group as an Arrow table of EVENTS_SCHEMA."""
    by_dt: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        row = event_to_row(event)
        by_dt[partition_of(row)].append(row)
    return {dt: pa.Table.from_pylist(rows, schema=EVENTS_SCHEMA) for dt, rows in by_dt.items()}


def write_events(events: Iterable[dict[str, Any]], fs: pafs.FileSystem, root: str, file_id: str) -> list[str]:
    """Write one Parquet file per date partition, named by ``file_id``.

    A deterministic ``file_id`` (e.g. shard and sequence range) makes a retried batch overwrite
    its own file instead of adding a duplicate: S3 puts are atomic and last-writer-wins.
    """
    paths = []
    for dt, table in sorted(events_to_tables(events).items()):
        path = f"{root}/{EVENTS_PREFIX}/dt={dt}/{file_id}.parquet"
        _ensure_parent(fs, path)
        pq.write_table(table, path, filesystem=fs, compression="zstd")
        paths.append(path)
    return paths


def write_snapshot(rows: Iterable[dict[str, Any]], schema: pa.Schema, fs: pafs.FileSystem, path: str) -> int:
    table = pa.Table.from_pylist(list(rows), schema=schema)
    _ensure_parent(fs, path)
    pq.write_table(table, path, filesystem=fs, compression="zstd")
    return table.num_rows


def write_identity_snapshot(pairs: Iterable[tuple[str, str]], fs: pafs.FileSystem, root: str) -> int:
    rows = ({"identifier": i, "profile_id": p} for i, p in pairs)
    return write_snapshot(rows, IDENTITY_SCHEMA, fs, f"{root}/{IDENTITY_PREFIX}/identity.parquet")


def write_profiles_snapshot(profiles: Iterable[ProfileView], fs: pafs.FileSystem, root: str) -> int:
    def row(p: ProfileView) -> dict[str, Any]:
        return {
            "profile_id": p["profile_id"],
            "email": p["traits"].get("email") or _first(p["identifiers"].get("email")),
            "first_seen": parse_time(p["first_seen"]),
            "last_seen": parse_time(p["last_seen"]),
            "event_count": p["event_count"],
            "lifecycle_stage": p["lifecycle_stage"],
            "traits": json.dumps(p["traits"], default=str, sort_keys=True),
            "computed": json.dumps(p["computed_traits"], default=str, sort_keys=True),
            "consent": json.dumps(p["consent"], default=str, sort_keys=True),
            "lifecycle_history": json.dumps(p["lifecycle_history"], sort_keys=True),
        }

    return write_snapshot((row(p) for p in profiles), PROFILES_SCHEMA, fs,
                          f"{root}/{PROFILES_PREFIX}/profiles.parquet")


def _first(values: Any) -> Any:
    if isinstance(values, list | tuple) and values:
        return values[0]
    return values or None


def published_files(fs: pafs.FileSystem, folder: str) -> list[pafs.FileInfo]:
    """The Parquet files under ``folder`` that readers see (not hidden), sorted by path."""
    infos = fs.get_file_info(pafs.FileSelector(folder, recursive=True, allow_not_found=True))
    return sorted(
        (i for i in infos if i.type == pafs.FileType.File and i.path.endswith(".parquet")
         and not is_hidden(i.path[len(folder):])),
        key=lambda i: i.path,
    )


def events_dataset(fs: pafs.FileSystem, root: str) -> ds.Dataset:
    """The events of the lake as a dataset with ``dt`` read as a string, as Glue declares it."""
    partitioning = ds.partitioning(pa.schema([("dt", pa.string())]), flavor="hive")
    files = [f.path for f in published_files(fs, f"{root}/{EVENTS_PREFIX}")]
    return ds.dataset(files, schema=EVENTS_SCHEMA.append(pa.field("dt", pa.string())), filesystem=fs, format="parquet",
                      partitioning=partitioning, partition_base_dir=f"{root}/{EVENTS_PREFIX}")
