"""The local stack's AWS emulator: moto in its own process, with a stream that can be trimmed."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest

from cdp_infra.local import EmulatorServer


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    server = EmulatorServer().start()
    yield server
    server.stop()


def _kinesis(emulator: EmulatorServer):  # type: ignore[no-untyped-def]
    return boto3.client("kinesis", endpoint_url=f"http://{emulator.host}:{emulator.port}", region_name="us-east-1")


def _records_from_the_start(kinesis, shard: str) -> list[str]:  # type: ignore[no-untyped-def]
    iterator = kinesis.get_shard_iterator(StreamName="s", ShardId=shard,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    return [r["Data"].decode() for r in kinesis.get_records(ShardIterator=iterator)["Records"]]


def test_trimming_a_shard_forgets_the_processed_records_and_sequence_numbers_go_on(emulator) -> None:
    # Given a shard with three records
    kinesis = _kinesis(emulator)
    kinesis.create_stream(StreamName="s", ShardCount=1)
    shard = kinesis.list_shards(StreamName="s")["Shards"][0]["ShardId"]
    sequences = [kinesis.put_record(StreamName="s", Data=f"r{i}".encode(), PartitionKey="k")["SequenceNumber"]
                 for i in range(3)]
    # When every record is trimmed, and one more is put
    dropped = emulator.trim_kinesis(account="123456789012", region="us-east-1", stream="s", shard=shard,
                                    through=sequences[-1])
    after = kinesis.put_record(StreamName="s", Data=b"r3", PartitionKey="k")["SequenceNumber"]
    # Then only the new record is left, numbered after the trimmed ones
    assert dropped == 3
    assert int(after) > int(sequences[-1])
    assert _records_from_the_start(kinesis, shard) == ["r3"]


def test_the_emulator_counts_the_requests_it_serves_and_reports_its_memory(emulator) -> None:
    kinesis = _kinesis(emulator)
    kinesis.list_streams()
    stats = emulator.stats()
    assert stats["calls"]["Kinesis_20131202.ListStreams"][0] >= 1
    assert stats["rss_bytes"] > 0


def _dynamodb(emulator: EmulatorServer):  # type: ignore[no-untyped-def]
    return boto3.client("dynamodb", endpoint_url=f"http://{emulator.host}:{emulator.port}", region_name="us-east-1")


def test_a_cancelled_transaction_leaves_every_item_as_it_was(emulator) -> None:
    # Given a table with one item
    dynamodb = _dynamodb(emulator)
    dynamodb.create_table(TableName="t", KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                          BillingMode="PAY_PER_REQUEST")
    dynamodb.put_item(TableName="t", Item={"k": {"S": "a"}, "v": {"S": "old"}})
    # When a transaction updates it, adds another and then fails a condition
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException):
        dynamodb.transact_write_items(TransactItems=[
            {"Update": {"TableName": "t", "Key": {"k": {"S": "a"}}, "UpdateExpression": "SET v = :n",
                        "ExpressionAttributeValues": {":n": {"S": "new"}}}},
            {"Put": {"TableName": "t", "Item": {"k": {"S": "b"}}}},
            {"Put": {"TableName": "t", "Item": {"k": {"S": "c"}}, "ConditionExpression": "attribute_exists(k)"}},
        ])
    # Then nothing of it stays
    assert dynamodb.get_item(TableName="t", Key={"k": {"S": "a"}})["Item"]["v"] == {"S": "old"}
    assert "Item" not in dynamodb.get_item(TableName="t", Key={"k": {"S": "b"}})


def test_a_transaction_that_passes_applies_every_item(emulator) -> None:
    dynamodb = _dynamodb(emulator)
    dynamodb.transact_write_items(TransactItems=[
        {"Put": {"TableName": "t", "Item": {"k": {"S": "d"}}, "ConditionExpression": "attribute_not_exists(k)"}},
        {"Put": {"TableName": "t", "Item": {"k": {"S": "e"}}}},
    ])
    assert all("Item" in dynamodb.get_item(TableName="t", Key={"k": {"S": k}}) for k in "de")
