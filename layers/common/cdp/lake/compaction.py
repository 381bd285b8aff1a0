"""Compaction of a day's small Parquet files into few large ones, without losing or duplicating rows.

The archive writes one small file per Kinesis batch and partition; Athena bills a minimum per file
opened and is slow on many small files. ``compact_partition`` rewrites one ``dt`` partition:

1. list the partition's files (files written after this listing are left alone);
2. read them, drop rows that are exact duplicates (a redelivered batch), sort by time;
3. write the result under a hidden name (``_compacting-...``; readers skip names starting with ``_``),
   check it holds every distinct row, then publish it under its final name;
4. delete the listed originals.

Readers never see fewer rows than before. Between steps 3 and 4 they may see a row twice, which
segment queries absorb (they count distinct message ids), and a crash there is repaired by running
the compaction again: the next run reads the originals and the compacted file and removes the
duplicates. Hidden leftovers of a crashed run are deleted first.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from cdp.errors import StoreError
from cdp.lake import EVENTS_PREFIX
from cdp.lake.parquet import EVENTS_SCHEMA, published_files

DEFAULT_MAX_ROWS_PER_FILE = 4_000_000
DEFAULT_ROW_GROUP_ROWS = 500_000
_WORK_PREFIX = "_compacting-"


@dataclass(frozen=True, slots=True)
class CompactionReport:
    dt: str
    files_before: int
    files_after: int
    rows_before: int
    rows_after: int
    bytes_before: int
    bytes_after: int
    # Rows removed by ``drop`` (an erasure), and the originals deleted (their versions are the caller's).
    rows_dropped: int = 0
    removed: tuple[str, ...] = field(default=())

    @property
    def duplicates_removed(self) -> int:
        return self.rows_before - self.rows_dropped - self.rows_after


def compact_partition(
    fs: pafs.FileSystem,
    root: str,
    dt: str,
    *,
    min_files: int = 2,
    max_rows_per_file: int = DEFAULT_MAX_ROWS_PER_FILE,
    row_group_rows: int = DEFAULT_ROW_GROUP_ROWS,
    drop: Callable[[pa.Table], pa.Array | pa.ChunkedArray] | None = None,
) -> CompactionReport:
    """Rewrite partition ``dt`` of the events into as few files as ``max_rows_per_file`` allows.

    ``drop`` (an erasure) gives a boolean mask of rows to leave out; the day is rewritten when any
    row matches, whatever ``min_files`` says, and left alone when none does.
    """
    base = f"{root.rstrip('/')}/{EVENTS_PREFIX}/dt={dt}"
    infos = fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
    for leftover in (i for i in infos if i.base_name.startswith(_WORK_PREFIX)):
        fs.delete_file(leftover.path)
    files = published_files(fs, base)
    bytes_before = sum(i.size or 0 for i in files)
    if not files:
        return CompactionReport(dt, 0, 0, 0, 0, 0, 0)

    table = ds.dataset(
        [i.path for i in files], schema=EVENTS_SCHEMA, filesystem=fs, format="parquet"
    ).to_table()
    rows_before = table.num_rows
    dropped = 0
    if drop is not None:
        mask = pc.fill_null(drop(table), False)
        dropped = int(pc.sum(mask).as_py() or 0)
        if not dropped:
            return CompactionReport(dt, len(files), len(files), rows_before, rows_before, bytes_before, bytes_before)
        table = table.filter(pc.invert(mask))
    distinct = _distinct_rows(table)
    if not dropped and len(files) < min_files and distinct.num_rows == rows_before:
        # Nothing to merge and nothing duplicated (one batch can carry the same event twice).
        return CompactionReport(dt, len(files), len(files), rows_before, rows_before, bytes_before, bytes_before)
    ordered = distinct.sort_by([("timestamp", "ascending"), ("message_id", "ascending")])

    token = uuid.uuid4().hex
    written: list[tuple[str, str]] = []
    for n, start in enumerate(range(0, max(ordered.num_rows, 1), max_rows_per_file)):
        part = ordered.slice(start, max_rows_per_file)
        work = f"{base}/{_WORK_PREFIX}{token}-{n:03d}.parquet"
        final = f"{base}/compacted-{token}-{n:03d}.parquet"
        pq.write_table(part, work, filesystem=fs, compression="zstd", row_group_size=row_group_rows)
        written.append((work, final))

    rows_written = sum(pq.ParquetFile(work, filesystem=fs).metadata.num_rows for work, _ in written)
    if rows_written != ordered.num_rows:
        for work, _ in written:
            fs.delete_file(work)
        raise StoreError(
            f"compaction of dt={dt} wrote {rows_written} rows instead of {ordered.num_rows}; originals kept",
            dt=dt,
        )
    for work, final in written:
        fs.move(work, final)
    for info in files:
        fs.delete_file(info.path)
    bytes_after = sum(i.size or 0 for i in fs.get_file_info([final for _, final in written]))
    return CompactionReport(
        dt=dt,
        files_before=len(files),
        files_after=len(written),
        rows_before=rows_before,
        rows_after=ordered.num_rows,
        bytes_before=bytes_before,
        bytes_after=bytes_after,
        rows_dropped=dropped,
        removed=tuple(i.path for i in files),
    )


def _distinct_rows(table: pa.Table) -> pa.Table:
    """The table without exact duplicate rows (nulls compare equal, as in SQL's DISTINCT)."""
    if table.num_rows == 0:
        return table
    names = table.column_names
    # group_by on every column is DISTINCT; keep the schema's column order and types.
    grouped = table.group_by(names, use_threads=False).aggregate([])
    return grouped.select(names).cast(table.schema)
