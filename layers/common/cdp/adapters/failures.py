"""The failure store (JSON lines under ``failures/`` in the lake), the failure queue, and reading a
shard's range back from the stream: what ``cdp.failures`` needs from AWS."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cdp.adapters.aws import AwsAdapter, aws_client
from cdp.adapters.errors import aws_errors
from cdp.errors import StoreError
from cdp.failures import PREFIX, FailedRecord, Notice, Pointer, StreamRecord, notice_body, parse_message
from cdp.settings import Settings

_UNAVAILABLE = "failure_store_unavailable"
#: Failure records are written and read in parallel: a throttled batch may send back 500 records.
_WORKERS = 16
_MISSING = frozenset({"NoSuchKey", "404"})


class S3FailureStore:
    def __init__(self, settings: Settings, *, s3: Any = None, sqs: Any = None) -> None:
        self._settings = settings
        self._s3 = s3
        self._sqs = sqs

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            self._s3 = aws_client(self._settings, "s3")
        return self._s3

    @property
    def sqs(self) -> Any:
        if self._sqs is None:
            self._sqs = aws_client(self._settings, "sqs")
        return self._sqs

    def attempts(self, keys: Iterable[str]) -> dict[str, int]:
        keys = list(keys)
        with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
            found = list(pool.map(self._read_if_any, keys))
        return {key: record.attempt for key, record in zip(keys, found, strict=True) if record is not None}

    def put(self, records: Sequence[FailedRecord]) -> None:
        with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
            list(pool.map(self._put_one, records))
        final = [r.key for r in records if r.final]
        if final:
            # The failure queue's alarm fires for what unify keeps, as for the mappings' own messages.
            with aws_errors(_UNAVAILABLE):
                self.sqs.send_message(QueueUrl=self._settings.failure_queue_url, MessageBody=notice_body(final))

    def keys(self, function: str | None = None) -> list[str]:
        prefix = f"{PREFIX}{function}/" if function else PREFIX
        found: list[str] = []
        with aws_errors(_UNAVAILABLE):
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self._settings.lake_bucket,
                                                                          Prefix=prefix):
                found += [obj["Key"] for obj in page.get("Contents", []) if obj["Key"].endswith(".jsonl")]
        return found

    def read(self, key: str) -> FailedRecord:
        with aws_errors(_UNAVAILABLE, key=key):
            body = self.s3.get_object(Bucket=self._settings.lake_bucket, Key=key)["Body"].read()
        return FailedRecord.from_dict(json.loads(body.decode("utf-8").split("\n", 1)[0]))

    def delete(self, key: str) -> None:
        """Remove a replayed record (the bucket is versioned: its earlier contents stay readable)."""
        with aws_errors(_UNAVAILABLE, key=key):
            self.s3.delete_object(Bucket=self._settings.lake_bucket, Key=key)

    def _read_if_any(self, key: str) -> FailedRecord | None:
        try:
            return self.read(key)
        except StoreError as exc:
            if exc.details.get("code") in _MISSING:
                return None
            raise

    def _put_one(self, record: FailedRecord) -> None:
        with aws_errors(_UNAVAILABLE, key=record.key):
            self.s3.put_object(Bucket=self._settings.lake_bucket, Key=record.key,
                               Body=(json.dumps(record.to_dict(), separators=(",", ":")) + "\n").encode("ascii"),
                               ContentType="application/x-ndjson")


class SqsFailureQueue(AwsAdapter):
    """The mappings' on-failure queue, read without consuming: messages stay until replayed."""

    service = "sqs"

    def peek(self) -> list[Pointer | Notice]:
        seen: dict[str, Pointer | Notice] = {}
        while True:
            with aws_errors(_UNAVAILABLE):
                # Hidden while this command reads them all, so each receive brings new ones.
                got = self.client.receive_message(QueueUrl=self.settings.failure_queue_url,
                                                  MaxNumberOfMessages=10, VisibilityTimeout=30,
                                                  WaitTimeSeconds=0).get("Messages", [])
            fresh = [m for m in got if m["MessageId"] not in seen]
            if not fresh:
                break
            for message in fresh:
                parsed = parse_message(message["ReceiptHandle"], message["Body"])
                if parsed is not None:
                    seen[message["MessageId"]] = parsed
        # Visible again at once (nothing else consumes this queue, so the receipts stay valid for delete).
        for message in seen.values():
            with aws_errors(_UNAVAILABLE):
                self.client.change_message_visibility(QueueUrl=self.settings.failure_queue_url,
                                                      ReceiptHandle=message.receipt, VisibilityTimeout=0)
        return list(seen.values())

    def delete(self, receipt: str) -> None:
        with aws_errors(_UNAVAILABLE):
            self.client.delete_message(QueueUrl=self.settings.failure_queue_url, ReceiptHandle=receipt)


class KinesisRangeReader(AwsAdapter):
    """A shard's records from one sequence number to another, while the stream retains them."""

    service = "kinesis"

    def read_range(self, shard_id: str, start: str, end: str) -> list[StreamRecord]:
        found: list[StreamRecord] = []
        with aws_errors("stream_read_failed", shard=shard_id):
            iterator = self.client.get_shard_iterator(
                StreamName=self.settings.events_stream, ShardId=shard_id,
                ShardIteratorType="AT_SEQUENCE_NUMBER", StartingSequenceNumber=start)["ShardIterator"]
            while iterator:
                page = self.client.get_records(ShardIterator=iterator, Limit=1000)
                for r in page["Records"]:
                    if int(r["SequenceNumber"]) > int(end):
                        return self._checked(found, start)
                    found.append(StreamRecord(shard_id, r["SequenceNumber"], r["PartitionKey"], r["Data"]))
                if not page["Records"] or not page.get("MillisBehindLatest", 1):
                    break
                iterator = page.get("NextShardIterator")
        return self._checked(found, start)

    @staticmethod
    def _checked(found: list[StreamRecord], start: str) -> list[StreamRecord]:
        if not found or found[0].sequence_number != start:
            raise StoreError("records_no_longer_in_stream", retryable=False, start=start)
        return found
