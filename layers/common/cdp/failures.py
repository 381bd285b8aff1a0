"""Stream records a consumer could not process, kept whole in the lake until they are replayed.

A record lands here when unify isolates it (the store cannot hold it, or it is not an event) or
each time unify sends it back to the mapping for a retryable error. It is one JSON line under
``failures/<function>/dt=<day the record reached the stream>/<shard>-<sequence>.jsonl``: the key
depends only on the record, so a redelivered batch rewrites the same object instead of adding one.
The line keeps the record's bytes (base64), partition key, shard and sequence, the reason and how
many deliveries failed, so ``cdp failures replay`` can put the very same record (same messageId)
back on the stream once the cause is fixed, after the stream itself has dropped it.

The failure queue holds two kinds of message: a mapping's on-failure message (a pointer to a
range of a shard, readable while the stream retains it) and the notice unify sends when it keeps a
record for good, so that the queue's alarm fires for both.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cdp.errors import StoreError

PREFIX = "failures/"
#: Deliveries of a record by a Kinesis mapping: the first and MaximumRetryAttempts (template.yaml) retries.
MAPPING_DELIVERIES = 6


def failure_key(function: str, arrived_at: str, shard_id: str, sequence_number: str) -> str:
    return f"{PREFIX}{function}/dt={arrived_at[:10]}/{shard_id}-{sequence_number}.jsonl"


@dataclass(frozen=True)
class FailedRecord:
    function: str
    shard_id: str
    sequence_number: str
    partition_key: str
    data: bytes
    arrived_at: str  # when the record reached the stream (UTC, ISO-8601): the key's day
    reason: str
    retryable: bool
    attempt: int  # deliveries that failed, this one included
    failed_at: str
    message_id: str | None = None

    @property
    def key(self) -> str:
        return failure_key(self.function, self.arrived_at, self.shard_id, self.sequence_number)

    @property
    def final(self) -> bool:
        """No delivery is left: the record stays here until it is replayed."""
        return not self.retryable or self.attempt >= MAPPING_DELIVERIES

    def to_dict(self) -> dict[str, Any]:
        return {
            "function": self.function, "shardId": self.shard_id, "sequenceNumber": self.sequence_number,
            "partitionKey": self.partition_key, "data": base64.b64encode(self.data).decode("ascii"),
            "arrivedAt": self.arrived_at, "reason": self.reason, "retryable": self.retryable,
            "attempt": self.attempt, "final": self.final, "failedAt": self.failed_at, "messageId": self.message_id,
        }

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> FailedRecord:
        return cls(
            function=str(value["function"]), shard_id=str(value["shardId"]),
            sequence_number=str(value["sequenceNumber"]), partition_key=str(value["partitionKey"]),
            data=base64.b64decode(value["data"]), arrived_at=str(value["arrivedAt"]), reason=str(value["reason"]),
            retryable=bool(value["retryable"]), attempt=int(value["attempt"]), failed_at=str(value["failedAt"]),
            message_id=value.get("messageId"),
        )


class FailureStore(Protocol):
    def attempts(self, keys: Iterable[str]) -> dict[str, int]:
        """The failed deliveries already recorded under each key (absent: none)."""
        ...

    def put(self, records: Sequence[FailedRecord]) -> None:
        """Write each record under its key, then announce the final ones on the failure queue."""
        ...

    def keys(self, function: str | None = None) -> list[str]: ...

    def read(self, key: str) -> FailedRecord: ...

    def delete(self, key: str) -> None: ...


# ------------------------------------------------------------------ the failure queue
@dataclass(frozen=True)
class Pointer:
    """A Kinesis mapping's on-failure message: where the records were, not the records."""

    receipt: str
    function: str
    condition: str
    shard_id: str
    start: str
    end: str
    size: int
    at: str

    def covers(self, shard_id: str, sequence_number: str) -> bool:
        return shard_id == self.shard_id and int(self.start) <= int(sequence_number) <= int(self.end)


@dataclass(frozen=True)
class Notice:
    """Unify's message for records it kept for good: the keys of their failure records."""

    receipt: str
    keys: tuple[str, ...]


def notice_body(keys: Sequence[str]) -> str:
    return json.dumps({"failureRecords": list(keys)})


def parse_message(receipt: str, body: str) -> Pointer | Notice | None:
    """A failure-queue message, or None for anything else."""
    try:
        value = json.loads(body)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("failureRecords"), list):
        return Notice(receipt, tuple(str(k) for k in value["failureRecords"]))
    info = value.get("KinesisBatchInfo")
    if not isinstance(info, dict):
        return None
    context = value.get("requestContext") or {}
    return Pointer(receipt, str(context.get("functionArn", "")), str(context.get("condition", "")),
                   str(info["shardId"]), str(info["startSequenceNumber"]), str(info["endSequenceNumber"]),
                   int(info.get("batchSize", 0)), str(value.get("timestamp", "")))


@dataclass(frozen=True)
class StreamRecord:
    shard_id: str
    sequence_number: str
    partition_key: str
    data: bytes


class FailureQueue(Protocol):
    def peek(self) -> list[Pointer | Notice]:
        """Every message, left on the queue."""
        ...

    def delete(self, receipt: str) -> None: ...


class StreamReader(Protocol):
    def read_range(self, shard_id: str, start: str, end: str) -> list[StreamRecord]:
        """The records of a shard from ``start`` to ``end``; StoreError when the stream no longer has them."""
        ...


class StreamWriter(Protocol):
    def put_raw(self, records: Sequence[StreamRecord]) -> None:
        """Put the records' bytes back on the stream under their partition keys."""
        ...


# ------------------------------------------------------------------ list and replay
@dataclass
class FailureListing:
    records: list[FailedRecord] = field(default_factory=list)
    # Each pointer with the records it points to (None: not fetched, or the stream no longer has them).
    pointers: list[tuple[Pointer, list[StreamRecord] | None]] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)


@dataclass
class ReplayReport:
    replayed: int = 0
    from_store: int = 0
    from_stream: int = 0
    # Pointers whose records neither the stream nor the failure records still hold.
    unrecoverable: list[Pointer] = field(default_factory=list)
    # Records about a suppressed person (a privacy request): not put back on the stream.
    suppressed: int = 0


def list_failures(store: FailureStore, queue: FailureQueue | None, reader: StreamReader | None = None, *,
                  function: str | None = None, include_retrying: bool = False) -> FailureListing:
    """The kept records (final ones unless ``include_retrying``) and the queue's messages."""
    listing = FailureListing()
    listing.records = [r for r in _read_all(store, function) if include_retrying or r.final]
    for message in queue.peek() if queue is not None else []:
        if isinstance(message, Notice):
            listing.notices.append(message)
            continue
        fetched: list[StreamRecord] | None = None
        if reader is not None:
            try:
                fetched = reader.read_range(message.shard_id, message.start, message.end)
            except StoreError:
                fetched = None
        listing.pointers.append((message, fetched))
    return listing


def replay_failures(store: FailureStore, queue: FailureQueue | None, reader: StreamReader, writer: StreamWriter,
                    *, function: str | None = None, include_retrying: bool = False,
                    dry_run: bool = False, suppressed: Callable[[Mapping[str, Any]], bool] | None = None,
                    ) -> ReplayReport:
    """Put the kept records and those the pointers name back on the stream (same bytes, same
    messageIds: unify and the lake dedupe), then remove the failure records and the messages."""
    report = ReplayReport()
    stored = _read_all(store, function)
    chosen = [r for r in stored if include_retrying or r.final]
    to_put: dict[tuple[str, str], StreamRecord] = {}
    to_delete = {r.key for r in chosen}
    for failed in chosen:
        to_put[(failed.shard_id, failed.sequence_number)] = _as_stream_record(failed)
    report.from_store = len(to_put)

    messages = queue.peek() if queue is not None else []
    done: list[Pointer] = []
    for pointer in (m for m in messages if isinstance(m, Pointer)):
        try:
            found = reader.read_range(pointer.shard_id, pointer.start, pointer.end)
            report.from_stream += sum(1 for r in found if (r.shard_id, r.sequence_number) not in to_put)
        except StoreError:
            covered = [r for r in stored if pointer.covers(r.shard_id, r.sequence_number)]
            to_delete |= {r.key for r in covered}
            found = [_as_stream_record(r) for r in covered]
            report.from_store += sum(1 for r in found if (r.shard_id, r.sequence_number) not in to_put)
        if not found:
            report.unrecoverable.append(pointer)
            continue
        for one in found:
            to_put.setdefault((one.shard_id, one.sequence_number), one)
        done.append(pointer)

    if suppressed is not None:
        for where, record in list(to_put.items()):
            event = _event_of(record.data)
            if event is not None and suppressed(event):
                del to_put[where]
                report.suppressed += 1
    report.replayed = len(to_put)
    if dry_run or not to_put:
        return report
    writer.put_raw(sorted(to_put.values(), key=lambda r: (r.shard_id, int(r.sequence_number))))
    for key in sorted(to_delete):
        store.delete(key)
    if queue is not None:
        for pointer in done:
            queue.delete(pointer.receipt)
        remaining = set(store.keys())
        for notice in (m for m in messages if isinstance(m, Notice)):
            if not remaining.intersection(notice.keys):
                queue.delete(notice.receipt)
    return report


def _read_all(store: FailureStore, function: str | None) -> list[FailedRecord]:
    return [store.read(key) for key in store.keys(function)]


def _as_stream_record(record: FailedRecord) -> StreamRecord:
    return StreamRecord(record.shard_id, record.sequence_number, record.partition_key, record.data)


def _event_of(data: bytes) -> dict[str, Any] | None:
    try:
        event = json.loads(data)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None
