"""Archiving a Kinesis batch writes Parquet the lake can read back, idempotently."""

from __future__ import annotations

import json

import pyarrow.fs as pafs

from cdp.lake.archive import archive_batch
from cdp.lake.parquet import events_dataset
from cdp.streams import DeliveredRecord


def _records(n: int, day: str = "2026-11-20") -> list[DeliveredRecord]:
    return [DeliveredRecord("shardId-000000000000", f"{1000 + i}", json.dumps({
        "messageId": f"m{i}", "type": "track", "event": "Viewed", "anonymousId": f"a{i % 3}",
        "timestamp": f"{day}T10:00:0{i % 10}.000Z"}).encode()) for i in range(n)]


def test_a_batch_is_written_to_its_date_partition_and_read_back(tmp_path) -> None:
    fs = pafs.LocalFileSystem()
    result = archive_batch(_records(5), fs, str(tmp_path))
    assert result.events == 5 and len(result.written) == 1
    table = events_dataset(fs, str(tmp_path)).to_table()
    assert table.num_rows == 5
    assert set(table.column("dt").to_pylist()) == {"2026-11-20"}


def test_a_redelivered_batch_overwrites_its_own_file_instead_of_duplicating(tmp_path) -> None:
    fs = pafs.LocalFileSystem()
    archive_batch(_records(5), fs, str(tmp_path))
    archive_batch(_records(5), fs, str(tmp_path))
    assert events_dataset(fs, str(tmp_path)).to_table().num_rows == 5


def test_an_unreadable_record_is_reported_and_nothing_after_it_is_written(tmp_path) -> None:
    fs = pafs.LocalFileSystem()
    records = _records(4)
    records.insert(2, DeliveredRecord("shardId-000000000000", "1002x", b"not json"))
    result = archive_batch(records, fs, str(tmp_path))
    assert result.unreadable == ["1002x"]
    assert events_dataset(fs, str(tmp_path)).to_table().num_rows == 2


def test_an_empty_lake_reads_as_an_empty_dataset(tmp_path) -> None:
    assert events_dataset(pafs.LocalFileSystem(), str(tmp_path)).to_table().num_rows == 0


def test_files_still_being_written_are_not_read(tmp_path) -> None:
    fs = pafs.LocalFileSystem()
    archive_batch(_records(3), fs, str(tmp_path))
    (tmp_path / "events" / "dt=2026-11-20" / "_compacting.parquet").write_bytes(b"partial")
    assert events_dataset(fs, str(tmp_path)).to_table().num_rows == 3
