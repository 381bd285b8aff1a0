"""Archive a Kinesis batch of events to the lake, idempotently."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow.fs as pafs

from cdp.streams import DeliveredRecord, decode

from .parquet import write_events


@dataclass
class ArchiveResult:
    written: list[str] = field(default_factory=list)
    events: int = 0
    # Records that are not JSON objects: reported as failures so the mapping retries them and,
    # after its bounded retries, hands them to the on-failure destination (nothing dropped).
    unreadable: list[str] = field(default_factory=list)
    # Events about a suppressed person (a privacy request since they were collected): not written.
    suppressed: int = 0


def archive_batch(records: list[DeliveredRecord], fs: pafs.FileSystem, root: str, *,
                  suppressed: Callable[[Mapping[str, Any]], bool] | None = None) -> ArchiveResult:
    """Write the batch's events as Parquet, one file per date partition.

    The file name is the shard and the batch's first and last sequence numbers, so a redelivered
    batch rewrites the same object rather than adding duplicates.
    """
    result = ArchiveResult()
    events = []
    decoded = 0
    for record in records:
        event = decode(record)
        if event is None:
            # Stop here: the mapping checkpoints before this record and retries from it, so
            # what follows must not be written now (it would be written again, under another name).
            result.unreadable.append(record.sequence_number)
            break
        decoded += 1
        if suppressed is not None and suppressed(event):
            result.suppressed += 1
            continue
        events.append(event)
    if events:
        first, last = records[0], records[decoded - 1]
        file_id = f"{first.shard_id}-{first.sequence_number}-{last.sequence_number}"
        result.written = write_events(events, fs, root, file_id)
        result.events = len(events)
    return result
