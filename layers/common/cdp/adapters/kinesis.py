"""The events stream: PutRecords that cannot half-fail silently."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from cdp.adapters.aws import AwsAdapter
from cdp.adapters.errors import aws_errors
from cdp.collect.events import OutgoingRecord
from cdp.errors import StoreError, StreamUnavailable
from cdp.failures import StreamRecord
from cdp.settings import Settings

#: PutRecords limits (AWS): 500 records and 5 MiB (data plus partition keys) per call.
MAX_RECORDS_PER_CALL = 500
MAX_BYTES_PER_CALL = 5 * 1024 * 1024


def chunk_records(
    records: Sequence[OutgoingRecord],
    *,
    max_records: int = MAX_RECORDS_PER_CALL,
    max_bytes: int = MAX_BYTES_PER_CALL,
) -> list[list[OutgoingRecord]]:
    """Consecutive chunks, each within both PutRecords limits, in the original order."""
    chunks: list[list[OutgoingRecord]] = []
    current: list[OutgoingRecord] = []
    size = 0
    for record in records:
        record_size = len(record.data) + len(record.partition_key.encode("utf-8"))
        if current and (len(current) >= max_records or size + record_size > max_bytes):
            chunks.append(current)
            current, size = [], 0
        current.append(record)
        size += record_size
    if current:
        chunks.append(current)
    return chunks


class KinesisSink(AwsAdapter):
    """Writes records to the events stream, retrying only the records Kinesis refused.

    After ``max_attempts`` calls some records may still be refused: :class:`StreamUnavailable`
    is raised (the collector answers 503), never a silent partial write. A call that fails as a
    whole (no answer, throttled, refused) is not repeated here: the client's own retry policy
    (``Settings.aws_max_attempts``) already did, and repeating it again would multiply the
    attempts past API Gateway's 29 s.
    """

    service = "kinesis"

    def __init__(
        self,
        settings: Settings,
        *,
        client: Any = None,
        max_attempts: int = 4,
        base_delay: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(settings, client=client)
        self._max_attempts = max_attempts
        self._base_delay = base_delay
        self._sleep = sleep


    def put(self, records: Sequence[OutgoingRecord]) -> None:
        for chunk in chunk_records(records):
            self._put_chunk(chunk)

    def put_raw(self, records: Sequence[StreamRecord]) -> None:
        """Put records read back (a replay) with their bytes and partition keys unchanged."""
        self.put([OutgoingRecord({}, r.data, r.partition_key) for r in records])

    def _put_chunk(self, chunk: list[OutgoingRecord]) -> None:
        pending = chunk
        for attempt in range(self._max_attempts):
            if attempt:
                self._sleep(self._base_delay * (2 ** (attempt - 1)) * (1 + random.random()))
            try:
                with aws_errors("stream_write_failed", stream=self.settings.events_stream):
                    response = self.client.put_records(
                        StreamName=self.settings.events_stream,
                        Records=[{"Data": r.data, "PartitionKey": r.partition_key} for r in pending],
                    )
            except StoreError as exc:
                raise StreamUnavailable(
                    "stream_write_failed", retryable=exc.retryable, failed=len(pending), **exc.details
                ) from exc
            results = response.get("Records", [])
            pending = [r for r, result in zip(pending, results, strict=True) if result.get("ErrorCode")]
            if not pending:
                return
        raise StreamUnavailable("stream_write_failed", failed=len(pending))
