"""compact_partition: a day's small files become few large ones, with every distinct row kept once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.fs as pafs
from hypothesis import given, settings
from hypothesis import strategies as st

from cdp.lake.compaction import compact_partition
from cdp.lake.parquet import EVENTS_SCHEMA, write_events

DAY = datetime(2024, 3, 30, tzinfo=UTC)
DT = "2024-03-30"


def event(i: int) -> dict:
    return {
        "messageId": f"m{i}",
        "type": "track",
        "event": "Order Completed" if i % 2 else "Product Viewed",
        "userId": f"u{i % 7}",
        "timestamp": (DAY + timedelta(minutes=i)).isoformat(),
        "properties": {"total": i},
    }


def partition_files(root: Path) -> list[Path]:
    return sorted((root / "events" / f"dt={DT}").glob("*.parquet"))


def rows(root: Path) -> list[dict]:
    files = [str(p) for p in partition_files(root)]
    table = ds.dataset(files, schema=EVENTS_SCHEMA, format="parquet").to_table()
    return sorted(table.to_pylist(), key=lambda r: (r["message_id"], str(r["properties"])))


def write_batches(root: Path, batches: list[list[int]]) -> None:
    fs = pafs.LocalFileSystem()
    for n, batch in enumerate(batches):
        write_events([event(i) for i in batch], fs, str(root), f"batch-{n:04d}")


def test_many_small_files_become_one(tmp_path: Path):
    write_batches(tmp_path, [[i] for i in range(20)])
    before = rows(tmp_path)

    report = compact_partition(pafs.LocalFileSystem(), str(tmp_path), DT)

    assert (report.files_before, report.files_after) == (20, 1)
    assert len(partition_files(tmp_path)) == 1
    assert rows(tmp_path) == before


def test_a_redelivered_batch_is_kept_once(tmp_path: Path):
    write_batches(tmp_path, [[1, 2, 3], [1, 2, 3], [4]])

    report = compact_partition(pafs.LocalFileSystem(), str(tmp_path), DT)

    assert report.duplicates_removed == 3
    assert [r["message_id"] for r in rows(tmp_path)] == ["m1", "m2", "m3", "m4"]


def test_rows_with_one_message_id_but_different_content_are_both_kept(tmp_path: Path):
    write_batches(tmp_path, [[1], [2]])
    fs = pafs.LocalFileSystem()
    write_events([{**event(1), "properties": {"total": 99}}], fs, str(tmp_path), "retry")

    compact_partition(fs, str(tmp_path), DT)

    assert [r["message_id"] for r in rows(tmp_path)] == ["m1", "m1", "m2"]


def test_a_single_file_is_left_alone(tmp_path: Path):
    write_batches(tmp_path, [[1, 2]])
    before = partition_files(tmp_path)

    report = compact_partition(pafs.LocalFileSystem(), str(tmp_path), DT)

    assert partition_files(tmp_path) == before
    assert report.files_after == 1 and report.rows_after == 2


def test_a_missing_partition_is_nothing_to_do(tmp_path: Path):
    report = compact_partition(pafs.LocalFileSystem(), str(tmp_path), DT)

    assert (report.files_before, report.rows_before) == (0, 0)


def test_large_partitions_are_split_by_rows(tmp_path: Path):
    write_batches(tmp_path, [list(range(i, i + 10)) for i in range(0, 50, 10)])

    report = compact_partition(pafs.LocalFileSystem(), str(tmp_path), DT, max_rows_per_file=20)

    assert report.files_after == 3
    assert len(rows(tmp_path)) == 50


def test_a_crash_after_publishing_is_repaired_by_the_next_run(tmp_path: Path):
    write_batches(tmp_path, [[1, 2], [3]])
    fs = pafs.LocalFileSystem()
    expected = rows(tmp_path)
    originals = {p.name: p.read_bytes() for p in partition_files(tmp_path)}
    compact_partition(fs, str(tmp_path), DT)
    # the state a run leaves when it dies after publishing, before deleting the originals
    for name, content in originals.items():
        (tmp_path / "events" / f"dt={DT}" / name).write_bytes(content)

    compact_partition(fs, str(tmp_path), DT)

    assert rows(tmp_path) == expected
    assert len(partition_files(tmp_path)) == 1


def test_hidden_leftovers_of_a_crashed_run_are_removed(tmp_path: Path):
    write_batches(tmp_path, [[1], [2]])
    leftover = tmp_path / "events" / f"dt={DT}" / "_compacting-dead-000.parquet"
    leftover.write_bytes(b"partial")

    compact_partition(pafs.LocalFileSystem(), str(tmp_path), DT)

    assert not leftover.exists()


@settings(max_examples=15, deadline=None)
@given(batches=st.lists(st.lists(st.integers(0, 30), min_size=1, max_size=8), min_size=1, max_size=6))
def test_compaction_keeps_exactly_the_distinct_rows(tmp_path_factory, batches: list[list[int]]):
    root = tmp_path_factory.mktemp("lake")
    write_batches(root, batches)
    distinct = {i for batch in batches for i in batch}

    compact_partition(pafs.LocalFileSystem(), str(root), DT)

    assert sorted(r["message_id"] for r in rows(root)) == sorted(f"m{i}" for i in distinct)
