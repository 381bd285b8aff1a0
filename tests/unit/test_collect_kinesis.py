"""The Kinesis sink with a fake client: chunks within limits, retries only what failed."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from cdp.adapters.kinesis import KinesisSink, chunk_records
from cdp.collect import OutgoingRecord
from cdp.errors import ServiceThrottled, StreamUnavailable
from cdp.settings import Settings

SETTINGS = Settings(events_stream="events")


def record(n: int, size: int = 10) -> OutgoingRecord:
    return OutgoingRecord(event={"n": n}, data=b"x" * size, partition_key=f"k{n}")


class FakeKinesis:
    """Refuses the records whose data is listed in ``refuse`` for the first ``times`` calls."""

    def __init__(self, refuse: set[bytes] = frozenset(), times: int = 0, errors: int = 0) -> None:
        self.refuse, self.times, self.errors = set(refuse), times, errors
        self.calls: list[list[dict[str, Any]]] = []
        self.stored: list[bytes] = []

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        self.calls.append(Records)
        if self.errors:
            self.errors -= 1
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "PutRecords")
        failing = len(self.calls) <= self.times
        results = []
        for r in Records:
            if failing and r["Data"] in self.refuse:
                results.append(
                    {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow down"}
                )
            else:
                self.stored.append(r["Data"])
                results.append({"SequenceNumber": "1", "ShardId": "shardId-0"})
        return {"FailedRecordCount": sum("ErrorCode" in r for r in results), "Records": results}


def sink(client: FakeKinesis, attempts: int = 4) -> KinesisSink:
    return KinesisSink(SETTINGS, client=client, max_attempts=attempts, sleep=lambda _: None)


def test_chunks_hold_at_most_500_records() -> None:
    chunks = chunk_records([record(i) for i in range(1201)])
    assert [len(c) for c in chunks] == [500, 500, 201]


def test_chunks_hold_at_most_5_mib_of_data_and_keys() -> None:
    chunks = chunk_records([record(i, size=1024 * 1024) for i in range(6)])
    assert [len(c) for c in chunks] == [4, 2]


def test_chunking_keeps_the_order_of_the_records() -> None:
    records = [record(i) for i in range(1100)]
    assert [r for chunk in chunk_records(records) for r in chunk] == records


def test_every_record_is_written_in_one_call_when_kinesis_accepts_all() -> None:
    client = FakeKinesis()
    sink(client).put([record(1), record(2)])
    assert len(client.calls) == 1 and len(client.stored) == 2


def test_the_partition_key_and_data_of_each_record_are_sent() -> None:
    client = FakeKinesis()
    sink(client).put([OutgoingRecord(event={}, data=b'{"a":1}', partition_key="anon-1")])
    assert client.calls[0] == [{"Data": b'{"a":1}', "PartitionKey": "anon-1"}]


def test_only_the_refused_records_are_retried() -> None:
    client = FakeKinesis(refuse={b"bb"}, times=1)
    sink(client).put([OutgoingRecord({}, b"a", "k"), OutgoingRecord({}, b"bb", "k"), OutgoingRecord({}, b"c", "k")])
    assert [r["Data"] for r in client.calls[1]] == [b"bb"]
    assert sorted(client.stored) == [b"a", b"bb", b"c"]


def test_records_still_refused_after_every_attempt_raise_stream_unavailable() -> None:
    client = FakeKinesis(refuse={b"bb"}, times=99)
    with pytest.raises(StreamUnavailable) as raised:
        sink(client, attempts=3).put([OutgoingRecord({}, b"a", "k"), OutgoingRecord({}, b"bb", "k")])
    assert raised.value.details["failed"] == 1
    assert len(client.calls) == 3


def test_a_failed_call_is_left_to_the_clients_retry_policy_not_repeated() -> None:
    client = FakeKinesis(errors=1)
    with pytest.raises(StreamUnavailable):
        sink(client).put([record(1)])
    assert len(client.calls) == 1 and client.stored == []


def test_a_failed_call_raises_stream_unavailable_with_the_translated_error_as_cause() -> None:
    client = FakeKinesis(errors=99)
    with pytest.raises(StreamUnavailable) as raised:
        sink(client, attempts=2).put([record(1)])
    translated = raised.value.__cause__
    assert isinstance(translated, ServiceThrottled) and isinstance(translated.__cause__, ClientError)
    assert raised.value.retryable and raised.value.reason == "stream_write_failed"
